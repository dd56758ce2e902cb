using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Gymwire.Bench;

/// <summary>One load run: throughput and latency percentiles as the load generator measured them.</summary>
public sealed record LoadResult(double Rps, double P50Ms, double P99Ms, long Requests, long Errors)
{
    public static LoadResult Median(IReadOnlyList<LoadResult> runs) => new(
        Stats.Median(runs.Select(r => r.Rps)), Stats.Median(runs.Select(r => r.P50Ms)), Stats.Median(runs.Select(r => r.P99Ms)),
        runs.Sum(r => r.Requests), runs.Sum(r => r.Errors));
}

/// <summary>A point of a connection sweep: the median of several runs at one connection count.</summary>
public sealed record SweepPoint(int Connections, LoadResult Result);

public static class Stats
{
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
}

/// <summary>
/// The bytes this process allocated per unit of work, run by run. The runtime's count goes back when Server GC lowers its
/// heap count mid-run and jumps forward when it raises it again (it sums the active heaps only; dotnet/runtime#131069, seen
/// in 10.0.12): a negative run is left out, and the median of the runs is reported, so one run across a change does not
/// move it.
/// </summary>
public sealed class Allocations
{
    private readonly List<double> _perUnit = [];

    /// <summary>The precise count: the approximate one can stand still across a whole run.</summary>
    public static long Now() => GC.GetTotalAllocatedBytes(precise: true);

    public void Add(long bytes, long units) => _perUnit.Add(bytes >= 0 && units > 0 ? bytes / (double)units : double.NaN);

    public double Last => _perUnit.Count == 0 ? double.NaN : _perUnit[^1];

    public double Median => Stats.Median(_perUnit.Where(double.IsFinite));
}

/// <summary>
/// Drives wrk (Debian's package) against loopback. wrk keeps every connection busy (closed loop), so a
/// throughput "at p99 under N ms" is found by sweeping the connection count.
/// </summary>
public static partial class Wrk
{
    public static async Task<LoadResult> RunAsync(string url, int connections, TimeSpan duration, string? luaScript = null)
    {
        var start = new ProcessStartInfo("wrk")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "-t1", $"-c{connections}", $"-d{Math.Max(1, (int)duration.TotalSeconds)}s", "--latency", "--timeout", "5s" })
        {
            start.ArgumentList.Add(a);
        }
        if (luaScript is not null)
        {
            start.ArgumentList.Add("-s");
            start.ArgumentList.Add(luaScript);
        }
        start.ArgumentList.Add(url);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start wrk");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(duration + TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"wrk against {url} did not finish in time");
        }
        var text = await stdout;
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"wrk failed ({process.ExitCode}): {text} {await stderr}");
        }
        return Parse(text);
    }

    public static LoadResult Parse(string text)
    {
        var rps = double.Parse(RpsLine().Match(text).Groups[1].Value, CultureInfo.InvariantCulture);
        var requests = long.Parse(RequestsLine().Match(text).Groups[1].Value, CultureInfo.InvariantCulture);
        long errors = 0;
        if (Non2xx().Match(text) is { Success: true } non2xx)
        {
            errors += long.Parse(non2xx.Groups[1].Value, CultureInfo.InvariantCulture);
        }
        if (SocketErrors().Match(text) is { Success: true } socket)
        {
            errors += Enumerable.Range(1, 4).Sum(i => long.Parse(socket.Groups[i].Value, CultureInfo.InvariantCulture));
        }
        return new LoadResult(rps, Latency(text, "50%"), Latency(text, "99%"), requests, errors);
    }

    private static double Latency(string text, string percentile)
    {
        var m = Regex.Match(text, @"^\s*" + Regex.Escape(percentile) + @"\s+([\d.]+)(us|ms|s|m)\s*$", RegexOptions.Multiline);
        if (!m.Success)
        {
            return double.NaN;
        }
        var value = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        return m.Groups[2].Value switch
        {
            "us" => value / 1000,
            "ms" => value,
            "s" => value * 1000,
            _ => value * 60_000,
        };
    }

    /// <summary>A wrk Lua script that sets the method, body and headers of every request.</summary>
    public static string Script(string method, string? body, IReadOnlyDictionary<string, string> headers)
    {
        var path = Path.Combine(Path.GetTempPath(), $"gymwire-bench-{Guid.NewGuid():N}.lua");
        var lines = new List<string> { $"wrk.method = \"{method}\"" };
        if (body is not null)
        {
            lines.Add($"wrk.body = '{body.Replace("'", "\\'", StringComparison.Ordinal)}'");
        }
        lines.AddRange(headers.Select(h => $"wrk.headers[\"{h.Key}\"] = \"{h.Value}\""));
        File.WriteAllLines(path, lines);
        Scripts.Add(path);
        return path;
    }

    private static readonly System.Collections.Concurrent.ConcurrentBag<string> Scripts = [];

    /// <summary>Deletes the scripts this run wrote.</summary>
    public static void DeleteScripts()
    {
        foreach (var path in Scripts)
        {
            File.Delete(path);
        }
    }

    [GeneratedRegex(@"Requests/sec:\s+([\d.]+)")]
    private static partial Regex RpsLine();

    [GeneratedRegex(@"(\d+) requests in")]
    private static partial Regex RequestsLine();

    [GeneratedRegex(@"Non-2xx or 3xx responses:\s+(\d+)")]
    private static partial Regex Non2xx();

    [GeneratedRegex(@"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")]
    private static partial Regex SocketErrors();
}
