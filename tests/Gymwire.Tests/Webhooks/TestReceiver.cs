using System.Collections.Concurrent;
using System.Text;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace Gymwire.Tests.Webhooks;

/// <summary>One request the receiver got: headers and the raw body bytes, exactly as sent.</summary>
public sealed record ReceivedRequest(string Path, string Method, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string BodyText => Encoding.UTF8.GetString(Body);

    public string Header(string name) => Headers.TryGetValue(name.ToLowerInvariant(), out var v) ? v : throw new KeyNotFoundException($"no header {name}");
}

/// <summary>How the receiver answers one request.</summary>
public sealed record Reply(int Status = 200, string Body = "ok")
{
    public string? Location { get; init; }
    public string? RetryAfter { get; init; }
    /// <summary>Never answer (until the request is aborted).</summary>
    public bool Hang { get; init; }
    /// <summary>Wait for this before answering.</summary>
    public Task? Gate { get; init; }
    /// <summary>Stream this many bytes of body, generated on the fly (never allocated whole).</summary>
    public long StreamBytes { get; init; }
    /// <summary>The byte a streamed body repeats (text by default; 0 for a binary body).</summary>
    public byte StreamFill { get; init; } = (byte)'x';
    /// <summary>Answer 200 with headers at once, then send the body one byte a second (a slowloris receiver).</summary>
    public bool Trickle { get; init; }
}

/// <summary>
/// A real webhook receiver: Kestrel on 127.0.0.1, recording every request and answering as programmed per
/// path (a fixed reply, or one chosen by the attempt number). Unprogrammed paths answer 200.
/// </summary>
public sealed class TestReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<ReceivedRequest> _requests = new();
    private readonly ConcurrentDictionary<string, Func<int, Reply>> _replies = new();
    private readonly ConcurrentDictionary<string, int> _counts = new();
    private readonly ConcurrentDictionary<string, int> _active = new();
    private readonly ConcurrentDictionary<string, int> _maxActive = new();
    private readonly ConcurrentDictionary<string, int> _maxHeld = new();
    private long _bytesStreamed;
    private int _streamsEnded;

    private TestReceiver(WebApplication app)
    {
        _app = app;
    }

    public Uri BaseAddress { get; private set; } = null!;

    public int Port => BaseAddress.Port;

    public IReadOnlyCollection<ReceivedRequest> Requests => _requests;

    /// <summary>Bytes of streamed bodies actually written before the client stopped reading.</summary>
    public long BytesStreamed => Interlocked.Read(ref _bytesStreamed);

    /// <summary>Streamed replies that have finished (completed, or stopped because the client went away).</summary>
    public int StreamsEnded => Volatile.Read(ref _streamsEnded);

    public static async Task<TestReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new TestReceiver(app);
        app.Run(receiver.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.BaseAddress = new Uri(address);
        return receiver;
    }

    public string Url(string path) => new Uri(BaseAddress, path).ToString();

    public void On(string path, Reply reply) => _replies[path] = _ => reply;

    /// <summary>Answers by attempt number (1-based) on this path.</summary>
    public void On(string path, Func<int, Reply> reply) => _replies[path] = reply;

    /// <summary>The most requests this path ever had open at once.</summary>
    public int MaxConcurrent(string path) => _maxActive.GetValueOrDefault(path);

    /// <summary>
    /// The most requests this path had open at once for longer than <see cref="ConcurrencyGrace"/>, as seen by each
    /// request still open that long after it arrived. A request the sender has given up on ends here only when the
    /// receiver notices the closed connection, a moment later, and the sender's next request may arrive in that
    /// moment; <see cref="MaxConcurrent"/> counts that overlap, this does not. It lags arrivals by the grace.
    /// </summary>
    public int MaxConcurrentHeld(string path) => _maxHeld.GetValueOrDefault(path);

    public static readonly TimeSpan ConcurrencyGrace = TimeSpan.FromMilliseconds(250);

    /// <summary>Requests to <paramref name="path"/> being handled now.</summary>
    public int Active(string path) => _active.GetValueOrDefault(path);

    /// <summary>Starts counting <see cref="MaxConcurrent"/> afresh from the requests in flight now.</summary>
    public void ResetMaxConcurrent(string path) => _maxActive[path] = _maxHeld[path] = _active.GetValueOrDefault(path);

    public IReadOnlyList<ReceivedRequest> At(string path) => _requests.Where(r => r.Path == path).ToList();

    /// <summary>Waits (bounded) until <paramref name="count"/> requests reached <paramref name="path"/>.</summary>
    public async Task<IReadOnlyList<ReceivedRequest>> WaitForAsync(string path, int count, TimeSpan? timeout = null)
    {
        await Eventually.TrueAsync(() => Task.FromResult(At(path).Count >= count), timeout, $"{count} requests at {path} (got {At(path).Count})");
        return At(path);
    }

    private async Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "/";
        var active = _active.AddOrUpdate(path, 1, (_, c) => c + 1);
        _maxActive.AddOrUpdate(path, active, (_, m) => Math.Max(m, active));
        var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = SampleConcurrencyAsync(path, ended.Task);
        try
        {
            await AnswerAsync(context, path);
        }
        finally
        {
            _active.AddOrUpdate(path, 0, (_, c) => c - 1);
            ended.TrySetResult();
        }
    }

    private async Task SampleConcurrencyAsync(string path, Task ended)
    {
        if (await Task.WhenAny(ended, Task.Delay(ConcurrencyGrace)) != ended)
        {
            var active = _active.GetValueOrDefault(path);
            _maxHeld.AddOrUpdate(path, active, (_, m) => Math.Max(m, active));
        }
    }

    private async Task AnswerAsync(HttpContext context, string path)
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body, context.RequestAborted);
        var headers = context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString());
        var n = _counts.AddOrUpdate(path, 1, (_, c) => c + 1);
        _requests.Enqueue(new ReceivedRequest(path, context.Request.Method, headers, body.ToArray()));
        var reply = _replies.TryGetValue(path, out var choose) ? choose(n) : new Reply();

        if (reply.Hang)
        {
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
            }
            return;
        }
        if (reply.Gate is { } gate)
        {
            await gate.WaitAsync(context.RequestAborted);
        }
        context.Response.StatusCode = reply.Status;
        if (reply.Location is { } location)
        {
            context.Response.Headers.Location = location;
        }
        if (reply.RetryAfter is { } retryAfter)
        {
            context.Response.Headers.RetryAfter = retryAfter;
        }
        if (reply.Trickle)
        {
            context.Response.ContentType = "text/plain";
            await context.Response.StartAsync(context.RequestAborted);
            try
            {
                for (var i = 0; i < 3600 && !context.RequestAborted.IsCancellationRequested; i++)
                {
                    await context.Response.Body.WriteAsync("x"u8.ToArray(), context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                    await Task.Delay(TimeSpan.FromSeconds(1), context.RequestAborted);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or ConnectionAbortedException)
            {
                // The sender gave up on us, as it should.
            }
            return;
        }
        if (reply.StreamBytes > 0)
        {
            context.Response.ContentType = "application/octet-stream";
            context.Response.ContentLength = reply.StreamBytes;
            var chunk = new byte[64 * 1024];
            Array.Fill(chunk, reply.StreamFill);
            try
            {
                for (long sent = 0; sent < reply.StreamBytes; sent += chunk.Length)
                {
                    var size = (int)Math.Min(chunk.Length, reply.StreamBytes - sent);
                    // Kestrel discards writes after the client hangs up instead of failing them; a completed
                    // flush is the reliable sign that the transport is gone.
                    var flushed = await context.Response.BodyWriter.WriteAsync(chunk.AsMemory(0, size), context.RequestAborted);
                    if (flushed.IsCompleted || flushed.IsCanceled || context.RequestAborted.IsCancellationRequested)
                    {
                        break;
                    }
                    Interlocked.Add(ref _bytesStreamed, size);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or ConnectionAbortedException)
            {
                // The client stopped reading: exactly what a well-behaved sender does.
            }
            finally
            {
                Interlocked.Increment(ref _streamsEnded);
            }
            return;
        }
        context.Response.ContentType = "text/plain";
        await context.Response.WriteAsync(reply.Body, context.RequestAborted);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>Bounded polling for an observable result (never a fixed sleep).</summary>
public static class Eventually
{
    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan? timeout = null, string? what = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting for {what ?? "a condition"}");
            }
            await Task.Delay(20);
        }
    }

    public static async Task<T> ValueAsync<T>(Func<Task<T?>> probe, TimeSpan? timeout = null, string? what = null) where T : class
    {
        T? value = null;
        await TrueAsync(async () => (value = await probe()) is not null, timeout, what);
        return value!;
    }
}
