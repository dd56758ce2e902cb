using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Gymwire.Features.Sms;

/// <summary>
/// What became of one send. <see cref="Transient"/> failures may be retried; others are final. A sent message is
/// recorded with <see cref="Status"/> when the provider already knows more than <c>sent</c> (an earlier attempt found in
/// Twilio's list that Twilio delivered), and then <see cref="Error"/> is what it says of an undelivered one. A
/// <see cref="Configuration"/> failure (the provider refused Gymwire's credentials) is no fault of the message: it is
/// retried however many attempts it took, until the operator fixes the configuration.
/// </summary>
public sealed record SmsSendResult(bool Sent, string? ProviderMessageId, string? Error, bool Transient, bool Uncertain = false, bool Configuration = false,
    string Status = SmsStatuses.Sent)
{
    public static SmsSendResult Success(string providerMessageId, string status = SmsStatuses.Sent, string? error = null) =>
        new(true, providerMessageId, error, false, Status: status);
    public static SmsSendResult Permanent(string error) => new(false, null, error, false);
    /// <summary>The request certainly did not reach the provider (connection refused, 429): safe to retry.</summary>
    public static SmsSendResult Retry(string error) => new(false, null, error, true);
    /// <summary>The provider may have accepted it (5xx, timeout): retrying can duplicate.</summary>
    public static SmsSendResult RetryUncertain(string error) => new(false, null, error, true, Uncertain: true);
    /// <summary>The provider refused the credentials (nothing was sent): every message would fail alike until they are fixed.</summary>
    public static SmsSendResult Misconfigured(string error) => new(false, null, error, true, Configuration: true);
}

/// <summary>
/// Which of these provider message ids are already recorded for messages other than the one being sent: a look-up for an
/// earlier attempt must not take another message's send for this one's.
/// </summary>
public delegate Task<IReadOnlySet<string>> RecordedElsewhere(IReadOnlyCollection<string> providerMessageIds, CancellationToken ct);

/// <summary>Sends one SMS. Implementations never log the full number or the body.</summary>
public interface ISmsProvider
{
    string Name { get; }

    /// <summary>Describes the configuration for the SMS tile (never a credential).</summary>
    string Describe();

    Task<SmsSendResult> SendAsync(SmsMessage message, RecordedElsewhere recordedElsewhere, CancellationToken ct);
}

/// <summary>
/// Twilio's Messages API over HttpClient: <c>POST /2010-04-01/Accounts/{sid}/Messages.json</c>, form-encoded, basic auth.
/// Twilio has no idempotency key, so before sending a message whose earlier attempt may have reached it (see
/// <see cref="SmsMessage.UncertainSince"/>), it lists the messages to that number and records the one it finds instead.
/// </summary>
public sealed partial class TwilioSmsProvider(
    HttpClient http, IOptions<SmsOptions> options, TwilioStatusCallbacks callbacks, TimeProvider clock, ILogger<TwilioSmsProvider> logger) : ISmsProvider
{
    public const string HttpClientName = "twilio";

    /// <summary>How far Twilio's clock may be behind Gymwire's when it dates a message an uncertain attempt sent.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(1);

    /// <summary>Messages to one number read by a look-up; more than this since the uncertain attempt leaves it uncertain.</summary>
    public const int LookupPageSize = 50;

    private const string LookUpFailed = "Could not look for the earlier attempt in Twilio's messages: ";

    private readonly TwilioOptions _twilio = options.Value.Twilio;

    public string Name => "Twilio";

    public string Describe() => $"Twilio account {Mask(_twilio.AccountSid)}, sending from {SmsLog.MaskPhone(_twilio.From)}";

    private bool FromMessagingService => _twilio.From.StartsWith("MG", StringComparison.Ordinal);

    private string MessagesUrl => $"{_twilio.BaseUrl.TrimEnd('/')}/2010-04-01/Accounts/{Uri.EscapeDataString(_twilio.AccountSid)}/Messages.json";

    public async Task<SmsSendResult> SendAsync(SmsMessage message, RecordedElsewhere recordedElsewhere, CancellationToken ct)
    {
        if (message.UncertainSince is { } since && await LookUpAsync(message, since, recordedElsewhere, ct) is { } earlier)
        {
            return earlier;
        }
        var form = new List<KeyValuePair<string, string>> { new("To", message.Phone), new("Body", message.Message) };
        form.Add(FromMessagingService ? new("MessagingServiceSid", _twilio.From) : new("From", _twilio.From));
        // Without a public address Twilio has nowhere to report delivery: the message stays sent.
        if (callbacks.CallbackUrl is { } callbackUrl)
        {
            form.Add(new("StatusCallback", callbackUrl));
        }
        using var request = Authorized(new HttpRequestMessage(HttpMethod.Post, MessagesUrl) { Content = new FormUrlEncodedContent(form) });
        var (response, failure) = await ExchangeAsync(request, ct);
        if (response is null)
        {
            return failure!;
        }
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(ct);
            var status = (int)response.StatusCode;
            if (response.IsSuccessStatusCode && Field(body, "sid") is { } sid)
            {
                return SmsSendResult.Success(sid);
            }
            var error = Describe(status, body, response.ReasonPhrase);
            // A refusal of this message (its number, its text) is recorded on it, and the sender logs the attempt's
            // outcome; refused credentials are the server's configuration, failing every message alike.
            LogRejected(logger, response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden ? LogLevel.Warning : LogLevel.Information,
                message.Id, status);
            return response.StatusCode switch
            {
                HttpStatusCode.TooManyRequests => SmsSendResult.Retry(error),
                HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => CredentialsRefused(error),
                _ when status >= 500 => SmsSendResult.RetryUncertain(error),
                _ when response.IsSuccessStatusCode => SmsSendResult.Permanent($"Twilio answered {status} without a message sid"),
                _ => SmsSendResult.Permanent(error),
            };
        }
    }

    /// <summary>
    /// Looks in Twilio's messages to the number (from the configured number, unless it is a Messaging Service) for one
    /// with this body created since the uncertain attempt began, that Twilio has not failed or canceled, that is not this
    /// message's own earlier send, and that no other message of Gymwire's is recorded with (the same text to the same
    /// number may be another message's send). Returns it as sent; null when Twilio certainly has none; a failure to
    /// record when Twilio's answer cannot tell, which leaves the message uncertain and unsent.
    /// </summary>
    private async Task<SmsSendResult?> LookUpAsync(SmsMessage message, DateTime since, RecordedElsewhere recordedElsewhere, CancellationToken ct)
    {
        var query = $"?To={Uri.EscapeDataString(message.Phone)}{(FromMessagingService ? "" : $"&From={Uri.EscapeDataString(_twilio.From)}")}&PageSize={LookupPageSize}";
        using var request = Authorized(new HttpRequestMessage(HttpMethod.Get, MessagesUrl + query));
        var (response, failure) = await ExchangeAsync(request, ct);
        if (response is null)
        {
            return SmsSendResult.RetryUncertain(LookUpFailed + failure!.Error);
        }
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(ct);
            var status = (int)response.StatusCode;
            if (!response.IsSuccessStatusCode)
            {
                var error = LookUpFailed + Describe(status, body, response.ReasonPhrase);
                return response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden ? CredentialsRefused(error) : SmsSendResult.RetryUncertain(error);
            }
            if (ReadMessages(body) is not { } listed)
            {
                return SmsSendResult.RetryUncertain(LookUpFailed + "the list could not be read");
            }
            var from = since - ClockSkew;
            // The provider id the message carries is of a send already recorded, one the owner queued again after Twilio
            // could not deliver it: not the uncertain attempt's.
            var candidates = listed.Where(m => m.Created >= from && m.Status is not ("failed" or "canceled")
                && string.Equals(m.To, message.Phone, StringComparison.Ordinal) && string.Equals(m.Body, message.Message, StringComparison.Ordinal)
                && !string.Equals(m.Sid, message.ProviderMessageId, StringComparison.Ordinal)).ToList();
            if (candidates.Count > 0)
            {
                var taken = await recordedElsewhere([.. candidates.Select(m => m.Sid)], ct);
                candidates.RemoveAll(m => taken.Contains(m.Sid));
            }
            // The earliest is the first uncertain attempt's. Twilio lists newest first, so of two dated the same second
            // the one listed later is the older.
            var match = Enumerable.Reverse(candidates).MinBy(m => m.Created);
            if (match is not null)
            {
                LogFoundEarlier(logger, message.Id);
                // Its status callbacks may have come while no message carried its SID, and were then not recorded.
                return match.Status switch
                {
                    "delivered" => SmsSendResult.Success(match.Sid, SmsStatuses.Delivered),
                    "undelivered" => SmsSendResult.Success(match.Sid, SmsStatuses.Undelivered,
                        TwilioStatusCallbacks.UndeliveredError(match.Status, TwilioStatusCallbacks.ErrorCode(match.ErrorCode))),
                    _ => SmsSendResult.Success(match.Sid),
                };
            }
            // A full page whose every message is that recent may not hold them all.
            return listed.Count < LookupPageSize || listed.Any(m => m.Created < from)
                ? null
                : SmsSendResult.RetryUncertain($"{LookUpFailed}it lists more than {LookupPageSize} to this number since then");
        }
    }

    private sealed record ListedMessage(string Sid, string? To, string? Body, string? Status, string? ErrorCode, DateTimeOffset Created);

    /// <summary>The items of a Messages list answer, or null when it is not one (or an item's date cannot be read).</summary>
    private static List<ListedMessage>? ReadMessages(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("messages", out var items) || items.ValueKind != JsonValueKind.Array)
            {
                return null;
            }
            var listed = new List<ListedMessage>();
            foreach (var item in items.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Object || Text(item, "sid") is not { } sid
                    || !DateTimeOffset.TryParseExact(Text(item, "date_created"), Rfc2822, CultureInfo.InvariantCulture, DateTimeStyles.None, out var created))
                {
                    return null;
                }
                var errorCode = item.TryGetProperty("error_code", out var code) && code.ValueKind == JsonValueKind.Number ? code.GetRawText() : Text(item, "error_code");
                listed.Add(new ListedMessage(sid, Text(item, "to"), Text(item, "body"), Text(item, "status"), errorCode, created));
            }
            return listed;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Twilio's dates, e.g. <c>Wed, 18 Aug 2010 20:01:40 +0000</c>.</summary>
    private static readonly string[] Rfc2822 = ["ddd, dd MMM yyyy HH:mm:ss zzz", "ddd, d MMM yyyy HH:mm:ss zzz"];

    private static string? Text(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private HttpRequestMessage Authorized(HttpRequestMessage request)
    {
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{_twilio.AccountSid}:{_twilio.AuthToken}")));
        return request;
    }

    /// <summary>
    /// One request within <c>Sms:RequestTimeout</c> (on <see cref="TimeProvider"/>): its answer, or, when none came,
    /// what that means for a send (a timeout or a broken exchange may have reached Twilio; a refused connection did not).
    /// </summary>
    private async Task<(HttpResponseMessage? Response, SmsSendResult? Failure)> ExchangeAsync(HttpRequestMessage request, CancellationToken ct)
    {
        var limit = options.Value.RequestTimeout;
        using var timeout = new CancellationTokenSource(limit, clock);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            return (await http.SendAsync(request, linked.Token), null);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return (null, SmsSendResult.RetryUncertain($"Twilio did not answer within {limit.TotalSeconds:0} s"));
        }
        catch (HttpRequestException e) when (e.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError)
        {
            return (null, SmsSendResult.Retry($"Could not connect to Twilio: {e.HttpRequestError}"));
        }
        catch (HttpRequestException e)
        {
            return (null, SmsSendResult.RetryUncertain($"Twilio request failed: {e.HttpRequestError}"));
        }
    }

    private static string Describe(int status, string body, string? reason) =>
        $"Twilio {status}{(Field(body, "code") is { } code ? $" ({code})" : "")}: {Field(body, "message") ?? reason ?? "error"}";

    private static SmsSendResult CredentialsRefused(string error) =>
        SmsSendResult.Misconfigured($"{error} (check Sms:Twilio's AccountSid and AuthToken; the message stays queued until they work)");

    private static string? Field(string body, string name)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty(name, out var v)
                ? v.ValueKind == JsonValueKind.String ? v.GetString() : v.ValueKind == JsonValueKind.Number ? v.GetRawText() : null
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Mask(string sid) => sid.Length <= 6 ? "…" : sid[..2] + "…" + sid[^4..];

    [LoggerMessage(EventId = 8202, Message = "Twilio refused SMS {MessageId} with status {Status}")]
    private static partial void LogRejected(ILogger logger, LogLevel level, Guid messageId, int status);

    [LoggerMessage(EventId = 8209, Level = LogLevel.Information, Message = "SMS {MessageId}: Twilio had accepted an earlier attempt; recorded as sent, not sent again")]
    private static partial void LogFoundEarlier(ILogger logger, Guid messageId);
}

/// <summary>Development provider: records the message as sent without sending anything.</summary>
public sealed partial class LogSmsProvider(ILogger<LogSmsProvider> logger) : ISmsProvider
{
    public string Name => "Log (development)";

    public string Describe() => "development log provider: messages are recorded as sent but never delivered";

    public Task<SmsSendResult> SendAsync(SmsMessage message, RecordedElsewhere recordedElsewhere, CancellationToken ct)
    {
        LogWouldSend(logger, message.Id, SmsLog.MaskPhone(message.Phone), message.Message.Length);
        return Task.FromResult(SmsSendResult.Success("log_" + message.Id.ToString("N")));
    }

    [LoggerMessage(EventId = 8203, Level = LogLevel.Information, Message = "SMS {MessageId} to {Phone} ({Length} characters) recorded, not sent (Sms:Provider is 'log')")]
    private static partial void LogWouldSend(ILogger logger, Guid messageId, string phone, int length);
}

public static class SmsLog
{
    /// <summary>A phone number fit for logs: country prefix and last two digits only.</summary>
    public static string MaskPhone(string phone) =>
        phone.Length <= 6 || !phone.StartsWith('+') ? (phone.StartsWith("MG", StringComparison.Ordinal) ? phone : "…") : phone[..3] + "…" + phone[^2..];
}
