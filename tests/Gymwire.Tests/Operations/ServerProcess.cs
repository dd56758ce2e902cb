using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Operations;

/// <summary>
/// The built <c>gymwire</c> executable (the apphost, as a published build or a service manager runs it) started in a
/// chosen working directory with a clean environment: nothing inherited from the test run chooses its database, log
/// levels or content root.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _stdout = new();
    private readonly ConcurrentQueue<string> _stderr = new();

    private ServerProcess(Process process, Uri baseAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public IReadOnlyCollection<string> Stdout => _stdout;

    public string Output => string.Join("\n", _stdout.Concat(_stderr));

    public static string Executable => Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "gymwire.exe" : "gymwire");

    public static async Task<ServerProcess> StartAsync(string workingDirectory, IDictionary<string, string> environment, params string[] arguments)
    {
        var port = TestPorts.Free();
        var start = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workingDirectory,
        };
        start.ArgumentList.Add("serve");
        start.ArgumentList.Add($"--urls=http://127.0.0.1:{port}");
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("ConnectionStrings__", StringComparison.OrdinalIgnoreCase)
                     || k.StartsWith("Database__", StringComparison.OrdinalIgnoreCase) || k.StartsWith("Logging__", StringComparison.OrdinalIgnoreCase)
                     || k.StartsWith("DataProtection__", StringComparison.OrdinalIgnoreCase)
                     || k.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase) || k.StartsWith("DOTNET_CONTENTROOT", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(key);
        }
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }
        var process = Process.Start(start)!;
        var node = new ServerProcess(process, new Uri($"http://127.0.0.1:{port}/"));
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { node._stdout.Enqueue(e.Data); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { node._stderr.Enqueue(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var http = new HttpClient { BaseAddress = node.BaseAddress, Timeout = TimeSpan.FromSeconds(10) };
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                // Waits for the end of its output too: the message should carry why it ended.
                await process.WaitForExitAsync();
                throw new InvalidOperationException($"gymwire exited with {process.ExitCode}: {node.Output}");
            }
            try
            {
                if ((await http.GetAsync("/healthz")).StatusCode == HttpStatusCode.OK)
                {
                    return node;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }
            await Task.Delay(50);
        }
        await node.DisposeAsync();
        throw new TimeoutException($"gymwire did not become healthy: {node.Output}");
    }

    /// <summary>Sends SIGTERM, as systemd's stop or docker stop does, and returns the exit code once the process has exited.</summary>
    public async Task<int> TerminateAsync(TimeSpan timeout)
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }
        using var wait = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(wait.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
