using System.Security.Cryptography;
using System.Text;
using Gymwire.Features.Gyms;

namespace Gymwire.Features.Sms;

/// <summary>
/// Twilio's status callback: what became of a sent message. Twilio is asked for it on each send when Gymwire knows its
/// public address (<c>Auth:PublicUrl</c>), and posts each status change, form-encoded and signed with the account's
/// auth token (<c>X-Twilio-Signature</c>), to <see cref="Path"/>. A message becomes <c>delivered</c> or
/// <c>undelivered</c>; callbacks come more than once and out of order, so a final status is never replaced by a later
/// interim one, and <c>delivered</c> wins over <c>undelivered</c> whichever came first (a delivery receipt is proof).
/// </summary>
public sealed partial class TwilioStatusCallbacks(
    IOptions<SmsOptions> sms, IOptions<AuthOptions> auth, SmsMetrics metrics, ILogger<TwilioStatusCallbacks> logger)
{
    public const string Path = "/api/integrations/twilio/status";
    public const string SignatureHeader = "X-Twilio-Signature";

    /// <summary>
    /// The answer to a post that does not verify, whatever the reason (no signature, a wrong one, a body that is not a
    /// form, Twilio not configured): the reason goes to the debug log only.
    /// </summary>
    public const string SignatureRejected = "Invalid Twilio callback: the signature does not verify with the account's auth token";

    /// <summary>
    /// The URL Twilio is asked to post statuses to, and the one its signatures are checked against; null when this
    /// server does not send through Twilio or has no public address (a request's Host header is the client's choice,
    /// so it never stands in for one), in which case delivery stays unknown.
    /// </summary>
    public string? CallbackUrl =>
        sms.Value.Provider == SmsOptions.TwilioProvider && auth.Value.PublicUrl is { Length: > 0 } url ? url.TrimEnd('/') + Path : null;

    /// <summary>Handles one post: 200 with no body once verified (also for messages Gymwire does not know, so Twilio stops).</summary>
    public async Task<Results<Ok, BadRequest<ErrorResponse>, JsonHttpResult<ErrorResponse>>> ReceiveAsync(
        HttpRequest request, GymwireDbContext db, SqliteWriteGate gate, CancellationToken ct)
    {
        if (await UnverifiedAsync(request, ct) is { } reason)
        {
            LogRejected(logger, reason);
            return ApiErrors.Status(StatusCodes.Status403Forbidden, SignatureRejected);
        }
        var form = await request.ReadFormAsync(ct);
        var sid = form["MessageSid"].ToString();
        var status = form["MessageStatus"].ToString();
        // Twilio's SIDs are two letters and 32 hex digits; anything else cannot be one Gymwire recorded.
        if (sid.Length is 0 or > 100 || !sid.All(char.IsAsciiLetterOrDigit) || status.Length == 0)
        {
            return ApiErrors.BadRequest("MessageSid and MessageStatus are required");
        }
        var changed = false;
        if (status is "delivered" or "undelivered" or "failed")
        {
            // Through the gate, as every SQLite writer: a burst of callbacks after a bulk send then waits its turn in
            // process instead of holding thread-pool threads in SQLite's busy handler.
            using (await gate.EnterAsync(db, ct))
            {
                changed = status == "delivered"
                    ? await DeliveredAsync(db, sid, ct)
                    : await UndeliveredAsync(db, sid, status, ErrorCode(form["ErrorCode"].ToString()), ct);
            }
        }
        // queued, accepted, sending, sent and any later addition leave the message as it is.
        var known = changed || await db.SmsMessages.AnyAsync(m => m.ProviderMessageId == sid, ct);
        if (changed)
        {
            metrics.Delivery(status == "delivered" ? SmsStatuses.Delivered : SmsStatuses.Undelivered);
        }
        LogReceived(logger, sid, status, !known ? "unknown message" : changed ? "recorded" : "unchanged");
        return TypedResults.Ok();
    }

    private static async Task<bool> DeliveredAsync(GymwireDbContext db, string sid, CancellationToken ct) =>
        await db.SmsMessages
            .Where(m => m.ProviderMessageId == sid && (m.Status == SmsStatuses.Sent || m.Status == SmsStatuses.Undelivered))
            .ExecuteUpdateAsync(s => s.SetProperty(m => m.Status, SmsStatuses.Delivered).SetProperty(m => m.Error, (string?)null), ct) > 0;

    private static async Task<bool> UndeliveredAsync(GymwireDbContext db, string sid, string status, string? errorCode, CancellationToken ct)
    {
        var error = UndeliveredError(status, errorCode);
        return await db.SmsMessages.Where(m => m.ProviderMessageId == sid && m.Status == SmsStatuses.Sent)
            .ExecuteUpdateAsync(s => s.SetProperty(m => m.Status, SmsStatuses.Undelivered).SetProperty(m => m.Error, error), ct) > 0;
    }

    /// <summary>The error recorded with an <c>undelivered</c> message: Twilio's status and error code (see twilio.com/docs/api/errors).</summary>
    public static string UndeliveredError(string status, string? errorCode) =>
        $"Twilio reported it {status}{(errorCode is null ? "" : $" (error {errorCode})")}";

    /// <summary>Twilio's error codes are numbers; anything else is not kept.</summary>
    public static string? ErrorCode(string? code) => code is { Length: > 0 and <= 10 } && code.All(char.IsAsciiDigit) ? code : null;

    private async Task<string?> UnverifiedAsync(HttpRequest request, CancellationToken ct)
    {
        if (CallbackUrl is not { } url)
        {
            return "this server asks Twilio for no status callbacks (Sms:Provider is not twilio, or Auth:PublicUrl is not set)";
        }
        string? signature = request.Headers[SignatureHeader];
        if (string.IsNullOrEmpty(signature))
        {
            return $"no {SignatureHeader} header";
        }
        if (!request.HasFormContentType)
        {
            return "the body is not a form";
        }
        var form = await request.ReadFormAsync(ct);
        return Verifies(url, form, signature, sms.Value.Twilio.AuthToken) ? null : "the signature does not match the URL, the parameters and the auth token";
    }

    /// <summary>
    /// Twilio's request validation: base64 of HMAC-SHA1, keyed with the auth token, over the URL Twilio requested
    /// followed by each POST parameter's name and value, sorted by name (ordinal). Twilio's own validators also accept
    /// the URL with the scheme's default port added or removed, since Twilio may sign either form.
    /// </summary>
    public static bool Verifies(string url, IEnumerable<KeyValuePair<string, Microsoft.Extensions.Primitives.StringValues>> form, string signature, string authToken)
    {
        var expected = new byte[HMACSHA1.HashSizeInBytes];
        if (!Convert.TryFromBase64String(signature, expected, out var written) || written != expected.Length)
        {
            return false;
        }
        var parameters = new StringBuilder();
        foreach (var (name, values) in form.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            foreach (var value in values.Order(StringComparer.Ordinal))
            {
                parameters.Append(name).Append(value);
            }
        }
        var key = Encoding.UTF8.GetBytes(authToken);
        var matched = false;
        foreach (var candidate in UrlForms(url))
        {
            matched |= CryptographicOperations.FixedTimeEquals(HMACSHA1.HashData(key, Encoding.UTF8.GetBytes(candidate + parameters)), expected);
        }
        return matched;
    }

    private static IEnumerable<string> UrlForms(string url)
    {
        var uri = new Uri(url);
        if (!uri.IsDefaultPort)
        {
            return [url];
        }
        var rest = uri.PathAndQuery + uri.Fragment;
        return new[] { url, $"{uri.Scheme}://{uri.Host}{rest}", $"{uri.Scheme}://{uri.Host}:{uri.Port}{rest}" }.Distinct(StringComparer.Ordinal);
    }

    // Debug: anyone can post, so rejections must not fill the log.
    [LoggerMessage(EventId = 8210, Level = LogLevel.Debug, Message = "Rejected a Twilio status callback: {Reason}")]
    private static partial void LogRejected(ILogger logger, string reason);

    [LoggerMessage(EventId = 8211, Level = LogLevel.Debug, Message = "Twilio status {Status} for {MessageSid}: {Outcome}")]
    private static partial void LogReceived(ILogger logger, string messageSid, string status, string outcome);
}
