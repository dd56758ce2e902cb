using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Gymwire.Features.Sms;

/// <summary>
/// What became of one send. <see cref="Transient"/> failures may be retried; others are final. A
/// <see cref="Configuration"/> failure (the provider refused Gymwire's credentials) is no fault of the message: it is
/// retried however many attempts it took, until the operator fixes the configuration.
/// </summary>
public sealed record SmsSendResult(bool Sent, string? ProviderMessageId, string? Error, bool Transient, bool Uncertain = false, bool Configuration = false)
{
    public static SmsSendResult Success(string providerMessageId) => new(true, providerMessageId, null, false);
    public static SmsSendResult Permanent(string error) => new(false, null, error, false);
    /// <summary>The request certainly did not reach the provider (connection refused, 429): safe to retry.</summary>
    public static SmsSendResult Retry(string error) => new(false, null, error, true);
    /// <summary>The provider may have accepted it (5xx, timeout): retrying can duplicate.</summary>
    public static SmsSendResult RetryUncertain(string error) => new(false, null, error, true, Uncertain: true);
    /// <summary>The provider refused the credentials (nothing was sent): every message would fail alike until they are fixed.</summary>
    public static SmsSendResult Misconfigured(string error) => new(false, null, error, true, Configuration: true);
}

/// <summary>Sends one SMS. Implementations never log the full number or the body.</summary>
public interface ISmsProvider
{
    string Name { get; }

    /// <summary>Describes the configuration for the SMS tile (never a credential).</summary>
    string Describe();

    Task<SmsSendResult> SendAsync(SmsMessage message, CancellationToken ct);
}

/// <summary>Twilio's Messages API over HttpClient: <c>POST /2010-04-01/Accounts/{sid}/Messages.json</c>, form-encoded, basic auth.</summary>
public sealed partial class TwilioSmsProvider(HttpClient http, IOptions<SmsOptions> options, ILogger<TwilioSmsProvider> logger) : ISmsProvider
{
    public const string HttpClientName = "twilio";
    private readonly TwilioOptions _twilio = options.Value.Twilio;

    public string Name => "Twilio";

    public string Describe() => $"Twilio account {Mask(_twilio.AccountSid)}, sending from {SmsLog.MaskPhone(_twilio.From)}";

    public async Task<SmsSendResult> SendAsync(SmsMessage message, CancellationToken ct)
    {
        var url = $"{_twilio.BaseUrl.TrimEnd('/')}/2010-04-01/Accounts/{Uri.EscapeDataString(_twilio.AccountSid)}/Messages.json";
        var form = new List<KeyValuePair<string, string>> { new("To", message.Phone), new("Body", message.Message) };
        form.Add(_twilio.From.StartsWith("MG", StringComparison.Ordinal) ? new("MessagingServiceSid", _twilio.From) : new("From", _twilio.From));
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new FormUrlEncodedContent(form) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{_twilio.AccountSid}:{_twilio.AuthToken}")));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.Value.RequestTimeout);
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, timeout.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return SmsSendResult.RetryUncertain($"Twilio did not answer within {options.Value.RequestTimeout.TotalSeconds:0} s");
        }
        catch (HttpRequestException e) when (e.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError)
        {
            return SmsSendResult.Retry($"Could not connect to Twilio: {e.HttpRequestError}");
        }
        catch (HttpRequestException e)
        {
            return SmsSendResult.RetryUncertain($"Twilio request failed: {e.HttpRequestError}");
        }
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(ct);
            var status = (int)response.StatusCode;
            if (response.IsSuccessStatusCode && Field(body, "sid") is { } sid)
            {
                return SmsSendResult.Success(sid);
            }
            var error = $"Twilio {status}{(Field(body, "code") is { } code ? $" ({code})" : "")}: {Field(body, "message") ?? response.ReasonPhrase ?? "error"}";
            LogRejected(logger, message.Id, status);
            return response.StatusCode switch
            {
                HttpStatusCode.TooManyRequests => SmsSendResult.Retry(error),
                HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden =>
                    SmsSendResult.Misconfigured($"{error} (check Sms:Twilio's AccountSid and AuthToken; the message stays queued until they work)"),
                _ when status >= 500 => SmsSendResult.RetryUncertain(error),
                _ when response.IsSuccessStatusCode => SmsSendResult.Permanent($"Twilio answered {status} without a message sid"),
                _ => SmsSendResult.Permanent(error),
            };
        }
    }

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

    [LoggerMessage(EventId = 8202, Level = LogLevel.Warning, Message = "Twilio refused SMS {MessageId} with status {Status}")]
    private static partial void LogRejected(ILogger logger, Guid messageId, int status);
}

/// <summary>Development provider: records the message as sent without sending anything.</summary>
public sealed partial class LogSmsProvider(ILogger<LogSmsProvider> logger) : ISmsProvider
{
    public string Name => "Log (development)";

    public string Describe() => "development log provider: messages are recorded as sent but never delivered";

    public Task<SmsSendResult> SendAsync(SmsMessage message, CancellationToken ct)
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
