using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Gymwire.Bench;

/// <summary>
/// The webhook receivers, in a child process of their own: one Kestrel listening on N loopback ports,
/// answering 200 at <c>/r/{i}</c> (at once) and <c>/slow</c> (after 10 s). A body carrying
/// <c>"t0":&lt;Stopwatch timestamp&gt;</c> records its latency: on Linux the Stopwatch is CLOCK_MONOTONIC,
/// the same clock in every process, so the sender's t0 and the receiver's now compare directly.
/// </summary>
public static class ReceiversProcess
{
    private static long _normal;
    private static long _slow;
    private static int _latencyCount;
    private static readonly double[] Latencies = new double[4_000_000];
    public static readonly TimeSpan SlowDelay = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(45);

    public static async Task<int> RunAsync(string[] args)
    {
        var count = int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            for (var i = 0; i < count; i++)
            {
                k.Listen(IPAddress.Loopback, 0);
            }
        });
        var app = builder.Build();
        app.MapPost("/r/{i:int}", async (HttpContext context) =>
        {
            await RecordAsync(context.Request);
            Interlocked.Increment(ref _normal);
            return Results.Ok();
        });
        app.MapPost("/slow", async (HttpContext context) =>
        {
            await RecordAsync(context.Request);
            await Task.Delay(SlowDelay, context.RequestAborted);
            Interlocked.Increment(ref _slow);
            return Results.Ok();
        });
        // Issue 10's hostile receivers (R3), each bounded in time and bytes.
        app.MapPost("/hostile/hang", async (HttpContext context) =>
        {
            await Task.Delay(TimeSpan.FromSeconds(60), context.RequestAborted);
            return Results.Ok();
        });
        app.MapPost("/hostile/trickle", async (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain";
            for (var i = 0; i < 60 && !context.RequestAborted.IsCancellationRequested; i++)
            {
                await context.Response.Body.WriteAsync("x"u8.ToArray(), context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                await Task.Delay(TimeSpan.FromSeconds(1), context.RequestAborted);
            }
        });
        app.MapPost("/hostile/huge", async (HttpContext context) =>
        {
            context.Response.ContentType = "application/octet-stream";
            var chunk = new byte[64 * 1024];
            for (var sent = 0L; sent < 1L << 30 && !context.RequestAborted.IsCancellationRequested; sent += chunk.Length)
            {
                await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
            }
        });
        app.MapPost("/hostile/redirect", () => Results.Redirect("http://169.254.169.254/latest/meta-data/"));
        app.MapPost("/hostile/gone", () => Results.StatusCode(StatusCodes.Status410Gone));
        app.MapGet("/stats", () => Results.Text($"{Interlocked.Read(ref _normal)} {Interlocked.Read(ref _slow)}"));
        app.MapGet("/latency", () =>
        {
            var n = Math.Min(Volatile.Read(ref _latencyCount), Latencies.Length);
            var sorted = Latencies.AsSpan(0, n).ToArray();
            Array.Sort(sorted);
            return Results.Text(JsonSerializer.Serialize(new[] { n, Stats.Percentile(sorted, 0.5), Stats.Percentile(sorted, 0.99) }));
        });
        app.MapPost("/reset", () =>
        {
            Interlocked.Exchange(ref _normal, 0);
            Interlocked.Exchange(ref _slow, 0);
            Volatile.Write(ref _latencyCount, 0);
            return Results.Ok();
        });
        await app.StartAsync();
        var ports = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .Select(a => new Uri(a).Port);
        Console.WriteLine("READY " + string.Join(',', ports));
        // Bounded: ends when the parent closes stdin, or after Lifetime whatever happens.
        var parentGone = Task.Run(() => Console.In.ReadToEnd());
        await Task.WhenAny(parentGone, Task.Delay(Lifetime));
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await app.StopAsync(stop.Token);
        return 0;
    }

    private static async Task RecordAsync(HttpRequest request)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            var total = 0;
            int read;
            while (total < buffer.Length && (read = await request.Body.ReadAsync(buffer.AsMemory(total))) > 0)
            {
                total += read;
            }
            var now = Stopwatch.GetTimestamp();
            var span = buffer.AsSpan(0, total);
            var at = span.IndexOf("\"t0\":"u8);
            if (at >= 0 && Utf8Parser.TryParse(span[(at + 5)..], out long t0, out _))
            {
                var slot = Interlocked.Increment(ref _latencyCount) - 1;
                if (slot < Latencies.Length)
                {
                    Latencies[slot] = (now - t0) * 1000.0 / Stopwatch.Frequency;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

/// <summary>The parent's handle on a receivers process.</summary>
public sealed class Receivers : IAsyncDisposable
{
    private readonly Process _process;
    private readonly HttpClient _control = new() { Timeout = TimeSpan.FromSeconds(10) };

    private Receivers(Process process, int[] ports)
    {
        _process = process;
        Ports = ports;
    }

    public int[] Ports { get; }

    /// <summary>CPU time the receivers process has used so far (user and system).</summary>
    public TimeSpan CpuTime
    {
        get
        {
            _process.Refresh();
            return _process.TotalProcessorTime;
        }
    }

    public string Url(int i) => $"http://127.0.0.1:{Ports[i]}/r/{i}";

    public string SlowUrl => $"http://127.0.0.1:{Ports[0]}/slow";

    /// <summary>Never answers; trickles a byte a second; streams 1 GiB; redirects to the metadata address; answers 410.</summary>
    public IEnumerable<string> HostileUrls => (Environment.GetEnvironmentVariable("BENCH_HOSTILE")?.Split(',', StringSplitOptions.RemoveEmptyEntries) ?? ["hang", "trickle", "huge", "redirect", "gone"]).Select(h => $"http://127.0.0.1:{Ports[^1]}/hostile/{h}");

    /// <param name="count">Loopback ports to listen on.</param>
    /// <param name="niceness">The process's nice value (0: the bench's own priority): R3's hostile receivers run at 10,
    /// so that on the bench's shared cores they take what the healthy side leaves, as remote receivers would take none.</param>
    public static async Task<Receivers> StartAsync(int count, int niceness = 0)
    {
        var self = Environment.ProcessPath!;
        // Through nice(1), so that every thread of the child has the value from its start (Linux's nice is per thread).
        var start = new ProcessStartInfo(niceness == 0 ? self : "nice")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        if (niceness != 0)
        {
            start.ArgumentList.Add("-n");
            start.ArgumentList.Add(niceness.ToString(System.Globalization.CultureInfo.InvariantCulture));
            start.ArgumentList.Add(self);
        }
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            start.ArgumentList.Add(typeof(Receivers).Assembly.Location);
        }
        start.ArgumentList.Add("receivers");
        start.ArgumentList.Add(count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        start.Environment["DOTNET_gcServer"] = "0";
        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the receivers");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            var line = await process.StandardOutput.ReadLineAsync(timeout.Token) ?? throw new InvalidOperationException("the receivers exited");
            if (line.StartsWith("READY ", StringComparison.Ordinal))
            {
                return new Receivers(process, line[6..].Split(',').Select(int.Parse).ToArray());
            }
        }
    }

    public async Task ResetAsync() => (await _control.PostAsync($"http://127.0.0.1:{Ports[0]}/reset", null)).EnsureSuccessStatusCode();

    public async Task<(long Normal, long Slow)> StatsAsync()
    {
        var parts = (await _control.GetStringAsync($"http://127.0.0.1:{Ports[0]}/stats")).Split(' ');
        return (long.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture), long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    public async Task<(int Count, double P50, double P99)> LatencyAsync()
    {
        var values = JsonSerializer.Deserialize<double[]>(await _control.GetStringAsync($"http://127.0.0.1:{Ports[0]}/latency"))!;
        return ((int)values[0], values[1], values[2]);
    }

    /// <summary>Waits until the normal receivers have counted <paramref name="target"/>; returns when that happened, or null at the deadline.</summary>
    public async Task<TimeSpan?> WaitForAsync(long target, Stopwatch since, TimeSpan deadline)
    {
        while (since.Elapsed < deadline)
        {
            if ((await StatsAsync()).Normal >= target)
            {
                return since.Elapsed;
            }
            await Task.Delay(20);
        }
        return null;
    }

    public async ValueTask DisposeAsync()
    {
        _control.Dispose();
        try
        {
            _process.StandardInput.Close();
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(wait.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
        }
        _process.Dispose();
    }
}
