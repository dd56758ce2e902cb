using System.Collections.Concurrent;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;

namespace Gymwire.Tests.Sms;

public sealed record TwilioRequest(string Path, string? Authorization, IReadOnlyDictionary<string, string> Form);

/// <summary>
/// A local Twilio-compatible Messages API on loopback: records each request and answers 201 with a message sid,
/// or whatever failures a test queued first. It can also hold its answers, as a slow provider would, so that a test
/// can act while a send is in flight.
/// </summary>
public sealed class TwilioStandIn : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<(int Status, string Body)> _failures = new();
    private int _count;
    private TaskCompletionSource _answer = Answered();
    private TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ConcurrentQueue<TwilioRequest> Requests { get; } = new();
    public Uri BaseAddress { get; }

    public TwilioStandIn()
    {
        var builder = WebApplication.CreateSlimBuilder(["--urls=http://127.0.0.1:0"]);
        builder.Logging.ClearProviders();
        _app = builder.Build();
        _app.MapPost("/2010-04-01/Accounts/{sid}/Messages.json", (Delegate)HandleAsync);
        _app.StartAsync().GetAwaiter().GetResult();
        BaseAddress = new Uri(_app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    /// <summary>The next request gets this answer instead of success.</summary>
    public void FailNext(int status, string body) => _failures.Enqueue((status, body));

    /// <summary>Requests from now on are recorded but not answered until <see cref="ReleaseAnswers"/>.</summary>
    public void HoldAnswers()
    {
        _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        _answer = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Completes when a request is waiting for its answer (after <see cref="HoldAnswers"/>).</summary>
    public Task Held => _held.Task;

    public void ReleaseAnswers() => _answer.TrySetResult();

    private static TaskCompletionSource Answered()
    {
        var answered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        answered.SetResult();
        return answered;
    }

    private async Task<IResult> HandleAsync(HttpContext context)
    {
        var form = await context.Request.ReadFormAsync();
        Requests.Enqueue(new TwilioRequest(context.Request.Path, context.Request.Headers.Authorization, form.ToDictionary(f => f.Key, f => f.Value.ToString())));
        var answer = _answer.Task;
        _held.TrySetResult();
        await answer;
        if (_failures.TryDequeue(out var failure))
        {
            return Results.Content(failure.Body, "application/json", null, failure.Status);
        }
        var sid = $"SM{Interlocked.Increment(ref _count):D32}";
        return Results.Json(new { sid, status = "queued", to = form["To"].ToString(), body = form["Body"].ToString() }, statusCode: 201);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
