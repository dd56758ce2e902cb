using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;

namespace Gymwire.Tests.Sms;

public sealed record TwilioRequest(string Path, string? Authorization, IReadOnlyDictionary<string, string> Form);

/// <summary>A message the stand-in accepted, as Twilio's Messages list shows it.</summary>
public sealed record TwilioMessage(string Sid, string To, string From, string Body, DateTimeOffset Created)
{
    /// <summary>Twilio's status of the message; a test sets it to what Twilio would have made of it (e.g. <c>failed</c>).</summary>
    public string Status { get; set; } = "queued";

    /// <summary>Twilio's error code for a message it failed or could not deliver.</summary>
    public int? ErrorCode { get; set; }

    /// <summary>The account that sent it (the SID in the send's path).</summary>
    public string AccountSid { get; init; } = "";

    /// <summary>The <c>StatusCallback</c> the send named, where Twilio posts this message's status changes.</summary>
    public string? StatusCallback { get; init; }
}

/// <summary>
/// A local Twilio-compatible Messages API on loopback: records each request and answers 201 with a message sid,
/// or whatever failures a test queued first. It can also hold its answers, as a slow provider would, so that a test
/// can act while a send is in flight; a message it holds the answer to is already accepted, as Twilio accepts one
/// before a slow answer reaches the sender. Like Twilio, it lists the messages it accepted, newest first, dated by
/// <paramref name="clock"/>. It posts status callbacks as Twilio does (<see cref="CallBackAsync"/>).
/// </summary>
public sealed class TwilioStandIn : IAsyncDisposable
{
    /// <summary>The number a Messaging Service sends from (the stand-in's pool has one).</summary>
    public const string ServiceNumber = "+15550009999";

    private readonly WebApplication _app;
    private readonly TimeProvider _clock;
    private readonly string _authToken;
    private readonly ConcurrentQueue<(int Status, string Body, bool Accepted)> _failures = new();
    private readonly ConcurrentQueue<(int Status, string Body)> _listFailures = new();
    private readonly ConcurrentStack<TwilioMessage> _accepted = new();
    private int _count;
    private TaskCompletionSource _answer = Answered();
    private TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ConcurrentQueue<TwilioRequest> Requests { get; } = new();

    /// <summary>The list requests, in order; each one's query is in its <see cref="TwilioRequest.Form"/>.</summary>
    public ConcurrentQueue<TwilioRequest> ListRequests { get; } = new();

    public Uri BaseAddress { get; }

    public TwilioStandIn(TimeProvider clock, string authToken)
    {
        _clock = clock;
        _authToken = authToken;
        var builder = WebApplication.CreateSlimBuilder(["--urls=http://127.0.0.1:0"]);
        builder.Logging.ClearProviders();
        _app = builder.Build();
        _app.MapPost("/2010-04-01/Accounts/{sid}/Messages.json", (Delegate)HandleAsync);
        _app.MapGet("/2010-04-01/Accounts/{sid}/Messages.json", (Delegate)List);
        _app.StartAsync().GetAwaiter().GetResult();
        BaseAddress = new Uri(_app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    /// <summary>
    /// The next send gets this answer instead of success. <paramref name="accepted"/>: the message was accepted all
    /// the same (a 5xx after Twilio took it), so it is in the list.
    /// </summary>
    public void FailNext(int status, string body, bool accepted = false) => _failures.Enqueue((status, body, accepted));

    /// <summary>The next list request gets this answer.</summary>
    public void FailNextList(int status, string body) => _listFailures.Enqueue((status, body));

    /// <summary>Requests from now on are recorded but not answered until <see cref="ReleaseAnswers"/>.</summary>
    public void HoldAnswers()
    {
        _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        _answer = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Completes when a request is waiting for its answer (after <see cref="HoldAnswers"/>).</summary>
    public Task Held => _held.Task;

    public void ReleaseAnswers() => _answer.TrySetResult();

    /// <summary>The messages accepted with this body, newest first.</summary>
    public IReadOnlyList<TwilioMessage> AcceptedWith(string body) => [.. _accepted.Where(m => m.Body == body)];

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
        (int Status, string Body, bool Accepted)? failure = _failures.TryDequeue(out var f) ? f : null;
        TwilioMessage? accepted = null;
        if (failure is null or { Accepted: true })
        {
            var from = form.TryGetValue("From", out var number) ? number.ToString() : ServiceNumber;
            accepted = new TwilioMessage($"SM{Interlocked.Increment(ref _count):D32}", form["To"].ToString(), from, form["Body"].ToString(), _clock.GetUtcNow())
            {
                AccountSid = context.Request.RouteValues["sid"]?.ToString() ?? "",
                StatusCallback = form.TryGetValue("StatusCallback", out var callback) ? callback.ToString() : null,
            };
            _accepted.Push(accepted);
        }
        var answer = _answer.Task;
        _held.TrySetResult();
        await answer;
        if (failure is { } failed)
        {
            return Results.Content(failed.Body, "application/json", null, failed.Status);
        }
        return Results.Json(Resource(accepted!), statusCode: 201);
    }

    /// <summary>GET Messages.json: To and From filter, PageSize bounds the page, newest first, as Twilio lists them.</summary>
    private IResult List(HttpContext context)
    {
        var query = context.Request.Query;
        ListRequests.Enqueue(new TwilioRequest(context.Request.Path + context.Request.QueryString, context.Request.Headers.Authorization,
            query.ToDictionary(q => q.Key, q => q.Value.ToString())));
        if (_listFailures.TryDequeue(out var failure))
        {
            return Results.Content(failure.Body, "application/json", null, failure.Status);
        }
        var pageSize = int.TryParse(query["PageSize"], out var size) ? Math.Clamp(size, 1, 1000) : 50;
        var messages = _accepted.OrderByDescending(m => m.Created)
            .Where(m => (!query.ContainsKey("To") || m.To == query["To"]) && (!query.ContainsKey("From") || m.From == query["From"]))
            .Take(pageSize).Select(Resource).ToList();
        return Results.Json(new
        {
            first_page_uri = context.Request.Path + context.Request.QueryString,
            end = messages.Count - 1, previous_page_uri = (string?)null, messages,
            uri = context.Request.Path + context.Request.QueryString, page_size = pageSize, start = 0, next_page_uri = (string?)null, page = 0,
        });
    }

    private static object Resource(TwilioMessage m) => new
    {
        sid = m.Sid, to = m.To, from = m.From, body = m.Body, status = m.Status, direction = "outbound-api",
        date_created = m.Created.UtcDateTime.ToString("ddd, dd MMM yyyy HH:mm:ss '+0000'", System.Globalization.CultureInfo.InvariantCulture),
        date_sent = (string?)null, num_segments = "1", error_code = m.ErrorCode, error_message = (string?)null,
    };

    /// <summary>
    /// The message's status changes to <paramref name="status"/>, and Twilio posts it to the message's StatusCallback:
    /// form-encoded, signed with the auth token over that URL followed by each parameter's name and value sorted by
    /// name. The URL is the server's public one, so the post goes to <paramref name="server"/>, where a reverse proxy
    /// would forward it, naming the public host and the client <paramref name="from"/> as a proxy does.
    /// <paramref name="alter"/> changes the signed request before it is sent (a forger's edits).
    /// </summary>
    public Task<HttpResponseMessage> CallBackAsync(Uri server, TwilioMessage message, string status, int? errorCode = null, string from = "198.51.100.80",
        Action<Dictionary<string, string>>? alter = null)
    {
        message.Status = status;
        message.ErrorCode = errorCode ?? message.ErrorCode;
        var form = new Dictionary<string, string>
        {
            ["AccountSid"] = message.AccountSid, ["ApiVersion"] = "2010-04-01", ["From"] = message.From, ["To"] = message.To,
            ["MessageSid"] = message.Sid, ["SmsSid"] = message.Sid, ["MessageStatus"] = status, ["SmsStatus"] = status,
        };
        if (errorCode is { } code)
        {
            form["ErrorCode"] = code.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        var url = message.StatusCallback ?? throw new InvalidOperationException("The send named no StatusCallback");
        return PostSignedAsync(server, url, form, Sign(url, form), from, alter);
    }

    /// <summary>Twilio's signature of a form post to <paramref name="url"/> with this stand-in's auth token.</summary>
    public string Sign(string url, IReadOnlyDictionary<string, string> form) => Sign(url, form, _authToken);

    public static string Sign(string url, IReadOnlyDictionary<string, string> form, string authToken)
    {
        var data = new StringBuilder(url);
        foreach (var (name, value) in form.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            data.Append(name).Append(value);
        }
        return Convert.ToBase64String(HMACSHA1.HashData(Encoding.UTF8.GetBytes(authToken), Encoding.UTF8.GetBytes(data.ToString())));
    }

    /// <summary>Posts <paramref name="form"/> with this signature to <paramref name="url"/>'s path on <paramref name="server"/>.</summary>
    public static async Task<HttpResponseMessage> PostSignedAsync(Uri server, string url, Dictionary<string, string> form, string? signature, string from,
        Action<Dictionary<string, string>>? alter = null)
    {
        alter?.Invoke(form);
        var publicUrl = new Uri(url);
        using var client = new HttpClient { BaseAddress = server };
        using var request = new HttpRequestMessage(HttpMethod.Post, publicUrl.PathAndQuery) { Content = new FormUrlEncodedContent(form) };
        request.Headers.Host = publicUrl.Authority;
        request.Headers.Add("X-Forwarded-For", from);
        if (signature is not null)
        {
            request.Headers.Add("X-Twilio-Signature", signature);
        }
        var response = await client.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
