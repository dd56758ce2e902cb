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
/// A final status for a SID no message carries yet is kept (<see cref="SmsEarlyStatus"/>) and applied when one records it.
/// </summary>
public sealed partial class TwilioStatusCallbacks(
    IOptions<SmsOptions> sms, IOptions<AuthOptions> auth, SmsMetrics metrics, TimeProvider clock, ILogger<TwilioStatusCallbacks> logger)
{
    /// <summary>The first key of the PostgreSQL advisory locks on a SID ("Gw" + 2); the second is the SID's hash.</summary>
    private const int SidLockSpace = 0x4777_0002;

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
        var known = true;
        var final = status is "delivered" or "undelivered" or "failed";
        if (final)
        {
            var reported = status == "delivered" ? SmsStatuses.Delivered : SmsStatuses.Undelivered;
            var error = reported == SmsStatuses.Undelivered ? UndeliveredError(status, ErrorCode(form["ErrorCode"].ToString())) : null;
            // Through the gate, as every SQLite writer: a burst of callbacks after a bulk send then waits its turn in
            // process instead of holding thread-pool threads in SQLite's busy handler.
            using (await gate.EnterAsync(db, ct))
            {
                await using var tx = await db.Database.BeginTransactionAsync(ct);
                await LockSidAsync(db, sid, ct);
                changed = await ApplyAsync(db, sid, reported, error, ct);
                known = changed || await db.SmsMessages.AnyAsync(m => m.ProviderMessageId == sid, ct);
                if (!known)
                {
                    // The sender may not have recorded this SID yet: kept for when it does (see SmsEarlyStatus).
                    db.SmsEarlyStatuses.Add(new SmsEarlyStatus
                    {
                        ProviderMessageId = sid, Status = reported, Error = error, ReceivedAt = clock.GetUtcNow().UtcDateTime,
                    });
                    await db.SaveChangesAsync(ct);
                }
                await tx.CommitAsync(ct);
            }
        }
        else
        {
            // queued, accepted, sending, sent and any later addition leave the message as it is.
            known = await db.SmsMessages.AnyAsync(m => m.ProviderMessageId == sid, ct);
        }
        if (changed)
        {
            metrics.Delivery(status == "delivered" ? SmsStatuses.Delivered : SmsStatuses.Undelivered);
        }
        LogReceived(logger, sid, status, changed ? "recorded" : known ? "unchanged" : final ? "no message carries it yet; kept for a day" : "unknown message");
        return TypedResults.Ok();
    }

    /// <summary>
    /// Takes a lock on the SID until the transaction ends, so that a callback storing a status for it and a sender
    /// recording it (and applying what was stored) never pass each other: each sees the other's commit. On SQLite
    /// the gate's holder's transaction is the database's only writer already.
    /// </summary>
    internal static async Task LockSidAsync(GymwireDbContext db, string sid, CancellationToken ct)
    {
        if (db.Provider == DatabaseProvider.Postgres)
        {
            await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({SidLockSpace}, hashtext({sid}))", ct);
        }
    }

    /// <summary>
    /// For a sender that has just recorded <paramref name="sid"/>, in its transaction under <see cref="LockSidAsync"/>:
    /// applies the statuses kept for it (<c>delivered</c> if any came, else the latest) and deletes them. Returns the
    /// status the message took, or null when it did not change.
    /// </summary>
    internal static async Task<string?> ApplyEarlyAsync(GymwireDbContext db, string sid, CancellationToken ct)
    {
        var kept = await db.SmsEarlyStatuses.AsNoTracking().Where(e => e.ProviderMessageId == sid).OrderBy(e => e.ReceivedAt).ToListAsync(ct);
        if (kept.Count == 0)
        {
            return null;
        }
        var best = kept.LastOrDefault(e => e.Status == SmsStatuses.Delivered) ?? kept[^1];
        var changed = await ApplyAsync(db, sid, best.Status, best.Error, ct);
        await db.SmsEarlyStatuses.Where(e => e.ProviderMessageId == sid).ExecuteDeleteAsync(ct);
        return changed ? best.Status : null;
    }

    /// <summary>
    /// Records a final status on the message carrying the SID, if it moves it forward: <c>delivered</c> from <c>sent</c>
    /// or <c>undelivered</c>, <c>undelivered</c> from <c>sent</c> only.
    /// </summary>
    private static async Task<bool> ApplyAsync(GymwireDbContext db, string sid, string reported, string? error, CancellationToken ct) =>
        reported == SmsStatuses.Delivered
            ? await db.SmsMessages
                .Where(m => m.ProviderMessageId == sid && (m.Status == SmsStatuses.Sent || m.Status == SmsStatuses.Undelivered))
                .ExecuteUpdateAsync(s => s.SetProperty(m => m.Status, SmsStatuses.Delivered).SetProperty(m => m.Error, (string?)null), ct) > 0
            : await db.SmsMessages.Where(m => m.ProviderMessageId == sid && m.Status == SmsStatuses.Sent)
                .ExecuteUpdateAsync(s => s.SetProperty(m => m.Status, SmsStatuses.Undelivered).SetProperty(m => m.Error, error), ct) > 0;

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
