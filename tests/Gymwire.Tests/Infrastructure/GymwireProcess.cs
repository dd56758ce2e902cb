using System.Diagnostics;
using System.Net;

namespace Gymwire.Tests.Infrastructure;

/// <summary>
/// Gymwire as a real child process (the built gymwire executable), for what only a process can show:
/// SIGKILL mid-flight, restarts, and several nodes on one database.
/// </summary>
public sealed class GymwireProcess : IAsyncDisposable
{
    // Children still running when the test run ends (a test that failed before disposing its node) are killed,
    // so no gymwire outlives the run.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, Process> Running = new();

    static GymwireProcess() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        foreach (var process in Running.Values)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }
        }
    };

    private readonly Process _process;
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _output = new();

    private GymwireProcess(Process process, Uri baseAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public string Output => string.Join("\n", _output);

    public bool HasExited => _process.HasExited;

    public int ProcessId => _process.Id;

    /// <summary>Starts <c>gymwire serve</c> on a free loopback port with the given configuration and waits until /healthz answers.</summary>
    public static async Task<GymwireProcess> StartAsync(Store store, string connectionString, IEnumerable<KeyValuePair<string, string>>? settings = null)
    {
        var port = TestPorts.Free();
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "gymwire.dll"));
        start.ArgumentList.Add("serve");
        start.ArgumentList.Add($"--urls=http://127.0.0.1:{port}");
        start.Environment["Database__Provider"] = store == Store.Postgres ? "postgres" : "sqlite";
        start.Environment["ConnectionStrings__Gymwire"] = connectionString;
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        if (store == Store.Postgres)
        {
            start.Environment["DataProtection__Key"] = TestKeys.For(connectionString);
        }
        foreach (var (key, value) in settings ?? [])
        {
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }
        var process = Process.Start(start)!;
        Running[process.Id] = process;
        var node = new GymwireProcess(process, new Uri($"http://127.0.0.1:{port}/"));
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { node._output.Enqueue(e.Data); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { node._output.Enqueue(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var http = new HttpClient { BaseAddress = node.BaseAddress, Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(60);
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

    /// <summary>SIGKILL: no shutdown hooks, no flushing, exactly what a crash or an OOM kill does.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
        await _process.WaitForExitAsync();
        Running.TryRemove(_process.Id, out _);
    }

    public HttpClient Client(string? bearer = null)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        if (bearer is not null)
        {
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
        }
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }
}
