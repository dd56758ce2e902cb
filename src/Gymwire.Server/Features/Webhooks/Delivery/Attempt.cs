using System.Buffers;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Unicode;
using System.Text.Json;
using Gymwire.Features.Events;
using Gymwire.Infrastructure;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// One HTTP attempt of a delivery: the egress guard (through the named client's connect callback), the signature
/// headers, the per-attempt timeout, the response's kept headers and body excerpt, and a readable error for
/// whatever went wrong. It neither claims nor records: the worker does both around it.
/// </summary>
public sealed partial class Attempt(
    IHttpClientFactory httpClients,
    WebhookSecretProtector secrets,
    IOptions<WebhookOptions> options,
    TimeProvider clock,
    DeliveryMetrics metrics,
    ILogger<Attempt> logger)
{
    public const string HttpClientName = "Gymwire.Webhooks";
    public const int MaxResponseExcerptBytes = 64 * 1024;

    private static readonly string[] KeptResponseHeaders = ["content-type", "content-length", "location", "retry-after", "server", "date"];

    private const string UserAgent = "Gymwire-Webhooks/1.0";

    private readonly WebhookOptions _options = options.Value;

    /// <summary>
    /// Sends the delivery once and returns what to record. A delivery to a subscription deactivated since it was
    /// queued is not sent (its record has no attempt). Cancelling <paramref name="ct"/> (shutdown) abandons the attempt.
    /// </summary>
    public async Task<AttemptRecord> SendAsync(ClaimedDelivery delivery, CancellationToken ct)
    {
        if (!delivery.SubscriptionActive)
        {
            return new AttemptRecord(delivery, null, null, clock.GetUtcNow().UtcDateTime);
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var attempt = new WebhookAttempt
        {
            Id = Guid.CreateVersion7(now),
            GymId = delivery.GymId,
            DeliveryId = delivery.Id,
            Number = delivery.AttemptsRecorded + 1,
            AttemptedAt = now,
            Trigger = TriggerOf(delivery),
        };
        // One span per attempt, so the HttpClient's span nests under it; only ids as tags (never the URL or a secret).
        // It links to the request that wrote the event: a link, not a parent, since the attempt runs later in a trace of its own.
        using var activity = DeliveryMetrics.ActivitySource.HasListeners() && EventTrace.Parse(delivery.TraceContext) is { } origin
            ? DeliveryMetrics.ActivitySource.StartActivity("webhook attempt", ActivityKind.Internal, parentContext: default, links: [new ActivityLink(origin)])
            : DeliveryMetrics.ActivitySource.StartActivity("webhook attempt", ActivityKind.Internal);
        if (activity is not null)
        {
            activity.SetTag(DeliveryMetrics.SubscriptionTag, delivery.SubscriptionId.ToString());
            activity.SetTag(DeliveryMetrics.DeliveryTag, delivery.Id.ToString());
            activity.SetTag(DeliveryMetrics.TriggerTag, attempt.Trigger);
            activity.SetTag("gymwire.webhook.attempt", attempt.Number);
        }
        var (retryAfter, outcome, duration) = await PostAsync(delivery, attempt, ct);
        // An error can quote the receiver (a malformed status line, up to 64 KiB): stored whole, a row too long for its
        // column would fail to be recorded at every attempt, and the delivery be sent again after every claim.
        attempt.Error = ColumnText.Fit(attempt.Error, WebhookAttempt.MaxErrorLength);
        metrics.RecordAttempt(outcome, attempt.Trigger, duration, delivery.SubscriptionId);
        if (activity is not null)
        {
            activity.SetTag(DeliveryMetrics.OutcomeTag, outcome);
            if (outcome != DeliveryMetrics.Outcomes.Success)
            {
                activity.SetStatus(ActivityStatusCode.Error, outcome);
            }
        }
        // Retries count from the end of the failed attempt.
        return new AttemptRecord(delivery, attempt, retryAfter, clock.GetUtcNow().UtcDateTime);
    }

    /// <summary>
    /// What started the attempt (webhook_attempts.trigger): <c>retry</c> after a failed attempt, <c>redeliver</c> when the
    /// owner resent a finished delivery (its count reset, its last attempt kept), <c>test</c> for a test send, else <c>initial</c>.
    /// </summary>
    private static string TriggerOf(ClaimedDelivery delivery) =>
        delivery.AttemptCount > 0 ? DeliveryMetrics.Triggers.Retry
        : delivery.LastAttemptAt is not null ? DeliveryMetrics.Triggers.Redeliver
        : delivery.IsTest ? DeliveryMetrics.Triggers.Test
        : DeliveryMetrics.Triggers.Initial;

    /// <summary>
    /// POSTs the delivery and fills in <paramref name="attempt"/>; returns the receiver's Retry-After, if any, the
    /// attempt's outcome (<see cref="DeliveryMetrics.Outcomes"/>) and its duration.
    /// </summary>
    private async Task<(TimeSpan? RetryAfter, string Outcome, TimeSpan Duration)> PostAsync(ClaimedDelivery delivery, WebhookAttempt attempt, CancellationToken ct)
    {
        if (delivery.Body is not { } body)
        {
            attempt.Error = AttemptRecord.NoBodyError;
            return (null, DeliveryMetrics.Outcomes.NoBody, TimeSpan.Zero);
        }
        if (!_options.AllowHttp && !delivery.Url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            // Saved while Webhooks:AllowHttp was on; the operator has since turned it off.
            attempt.Error = "Plain http:// is not allowed (Webhooks:AllowHttp is false): change the webhook URL to https://";
            return (null, DeliveryMetrics.Outcomes.EgressRefused, TimeSpan.Zero);
        }
        using var request = new HttpRequestMessage(HttpMethod.Post, delivery.Url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.TryAddWithoutValidation("X-CombatScore-Event", delivery.Event);
        if (delivery.IsTest)
        {
            request.Headers.TryAddWithoutValidation(WebhookPayloads.TestHeader, "true");
        }
        foreach (var (name, value) in WebhookSigner.Headers(secrets.SigningSecrets(delivery, attempt.AttemptedAt), delivery.Id.ToString(), clock.GetUtcNow(), body))
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        request.Headers.TryAddWithoutValidation("User-Agent", UserAgent);

        // The per-attempt timeout measures real network time, not the (possibly simulated) clock of the schedule.
        using var timeout = new CancellationTokenSource(_options.Timeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        var started = Stopwatch.GetTimestamp();
        TimeSpan? retryAfter = null;
        var outcome = DeliveryMetrics.Outcomes.ConnectionError;
        try
        {
            using var client = httpClients.CreateClient(HttpClientName);
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token);
            attempt.StatusCode = (int)response.StatusCode;
            outcome = DeliveryMetrics.Outcomes.OfStatus(attempt.StatusCode.Value);
            attempt.ResponseHeaders = SelectHeaders(response);
            retryAfter = response.Headers.RetryAfter switch
            {
                { Delta: { } delta } => delta,
                { Date: { } date } => date - clock.GetUtcNow(),
                _ => null,
            };
            try
            {
                (attempt.ResponseBody, attempt.ResponseBodyTruncated) = await ReadExcerptAsync(response, linked.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or HttpRequestException or IOException && !ct.IsCancellationRequested)
            {
                attempt.Error = timeout.IsCancellationRequested
                    ? $"Timed out reading the response body after {_options.Timeout.TotalSeconds:0.###} s"
                    : "The response body could not be read: " + e.Message;
            }
            if (attempt.StatusCode is >= 300 and < 400 && attempt.Error is null)
            {
                attempt.Error = "Redirects are not followed: answer 2xx from the webhook URL itself";
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            attempt.Error = $"Timed out after {_options.Timeout.TotalSeconds:0.###} s";
            outcome = DeliveryMetrics.Outcomes.Timeout;
        }
        catch (HttpRequestException e)
        {
            attempt.Error = Describe(e);
            if (e.InnerException is EgressRefusedException refused)
            {
                outcome = DeliveryMetrics.Outcomes.EgressRefused;
                LogEgressRefused(logger, delivery.Id, delivery.SubscriptionId, refused.Detail);
            }
        }
        catch (EgressRefusedException e)
        {
            attempt.Error = e.Message;
            outcome = DeliveryMetrics.Outcomes.EgressRefused;
            LogEgressRefused(logger, delivery.Id, delivery.SubscriptionId, e.Detail);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            // A connect-level timeout can surface before the attempt's own token reports it.
            attempt.Error = $"Timed out after {_options.Timeout.TotalSeconds:0.###} s";
            outcome = DeliveryMetrics.Outcomes.Timeout;
        }
        catch (Exception e) when (!ct.IsCancellationRequested && e is InvalidOperationException or UriFormatException or NotSupportedException or IOException)
        {
            attempt.Error = "The request could not be sent: " + e.Message;
        }
        var duration = Stopwatch.GetElapsedTime(started);
        attempt.DurationMs = (int)Math.Min(int.MaxValue, duration.TotalMilliseconds);
        return (retryAfter, outcome, duration);
    }

    private static string Describe(HttpRequestException e)
    {
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            switch (inner)
            {
                case EgressRefusedException refused:
                    return refused.Message;
                case SocketException socket:
                    return socket.SocketErrorCode switch
                    {
                        SocketError.ConnectionRefused => "Connection refused",
                        SocketError.HostNotFound or SocketError.NoData => "Host not found",
                        SocketError.TimedOut => "Connection timed out",
                        _ => "Network error: " + socket.SocketErrorCode,
                    };
                default:
                    break;
            }
        }
        return e.HttpRequestError switch
        {
            HttpRequestError.NameResolutionError => "Host not found",
            HttpRequestError.SecureConnectionError => "TLS handshake failed: " + e.Message,
            HttpRequestError.ConnectionError => "Connection failed: " + e.Message,
            _ => e.Message,
        };
    }

    /// <summary>
    /// The kept headers as a JSON object that fits its column: each value is cut to 500 characters and, if escaping
    /// still makes the whole too long, to an equal share that fits even if every character were escaped (six each).
    /// </summary>
    internal static string SelectHeaders(HttpResponseMessage response)
    {
        var kept = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            var lower = name.ToLowerInvariant();
            if (KeptResponseHeaders.Contains(lower))
            {
                kept[lower] = ColumnText.Fit(string.Join(", ", values), 500);
            }
        }
        var json = JsonSerializer.Serialize(kept, GymwireJson.Options);
        if (json.Length > WebhookAttempt.MaxResponseHeadersLength)
        {
            // The names and the JSON punctuation take at most 20 characters a header.
            var share = (WebhookAttempt.MaxResponseHeadersLength / kept.Count - 20) / 6;
            foreach (var name in kept.Keys.ToList())
            {
                kept[name] = ColumnText.Fit(kept[name], share);
            }
            json = JsonSerializer.Serialize(kept, GymwireJson.Options);
        }
        return json;
    }

    /// <summary>
    /// Reads at most 64 KiB of the body, then stops: the rest is never read, let alone buffered. What is stored is at
    /// most 64 KiB too, as UTF-8: bytes that are not text (NUL, invalid UTF-8) decode to U+FFFD, three bytes each, so a
    /// binary body's excerpt is cut at the last whole character within the limit (and marked truncated). The text is
    /// decoded, cleaned and cut in pooled buffers, so the one string made is the excerpt itself (a 64 KiB string is
    /// already a large object).
    /// </summary>
    private static async Task<(string Body, bool Truncated)> ReadExcerptAsync(HttpResponseMessage response, CancellationToken ct)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        // One byte past the limit tells a truncated body from one of exactly 64 KiB. A body that states a shorter
        // length (most answers are a few bytes) gets no more room than that: the client never reads past it.
        var room = response.Content.Headers.ContentLength is { } stated && stated < MaxResponseExcerptBytes ? (int)stated + 1 : MaxResponseExcerptBytes + 1;
        var buffer = ArrayPool<byte>.Shared.Rent(room);
        var chars = ArrayPool<char>.Shared.Rent(room);
        try
        {
            var total = 0;
            int read;
            while (total < room && (read = await stream.ReadAsync(buffer.AsMemory(total, room - total), ct)) > 0)
            {
                total += read;
            }
            // UTF-8 never decodes to more chars than bytes; invalid sequences (a character cut at the limit too) become U+FFFD.
            Utf8.ToUtf16(buffer.AsSpan(0, Math.Min(total, MaxResponseExcerptBytes)), chars, out _, out var length);
            var text = chars.AsSpan(0, length);
            // Not every store's text columns can hold NUL; a binary body is only an excerpt for a human anyway.
            text.Replace('\0', '\uFFFD');
            var fits = FitUtf8(text, MaxResponseExcerptBytes);
            return (new string(text[..fits]), total > MaxResponseExcerptBytes || fits < length);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>How many of <paramref name="text"/>'s chars fit in <paramref name="maxBytes"/> of UTF-8, never splitting a surrogate pair.</summary>
    internal static int FitUtf8(ReadOnlySpan<char> text, int maxBytes)
    {
        if (text.Length * 3 <= maxBytes || Encoding.UTF8.GetByteCount(text) <= maxBytes)
        {
            return text.Length;
        }
        // The transcoder stops at the last whole scalar value that fits and says how many chars that was.
        var destination = ArrayPool<byte>.Shared.Rent(maxBytes);
        try
        {
            Utf8.FromUtf16(text, destination.AsSpan(0, maxBytes), out var charsRead, out _);
            return charsRead;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(destination);
        }
    }


    [LoggerMessage(EventId = 5104, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} to subscription {SubscriptionId} refused by the egress guard: {Reason}")]
    private static partial void LogEgressRefused(ILogger logger, Guid deliveryId, Guid subscriptionId, string reason);
}
