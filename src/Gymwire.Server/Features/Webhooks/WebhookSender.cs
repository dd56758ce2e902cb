using System.Buffers;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Unicode;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// A delivery a worker has claimed, with everything its attempt needs: the delivery, its body, its subscription and
/// the number of attempts already recorded, read together with the claim (one query for a whole batch). The body is
/// null only when the delivery's outbox event has been deleted by hand.
/// </summary>
public sealed record ClaimedDelivery(
    Guid Id,
    Guid GymId,
    Guid SubscriptionId,
    string Event,
    string? Payload,
    bool IsTest,
    int AttemptCount,
    DateTime? LastAttemptAt,
    int AttemptsRecorded,
    string Url,
    bool SubscriptionActive,
    string SecretProtected,
    string? PreviousSecretProtected,
    DateTime? PreviousSecretExpiresAt)
{
    /// <summary>
    /// When the delivery was due before its claim moved it to the end of the lease (null for a test send, which is
    /// attempted without a claim): a claim given back without an attempt is due at this time again.
    /// </summary>
    public DateTime? DueAt { get; init; }
}

/// <summary>What one attempt produced.</summary>
public sealed record AttemptOutcome(WebhookAttempt Attempt, string DeliveryStatus);

/// <summary>
/// Claims due deliveries, makes one HTTP attempt, and records it: the attempt row, the delivery's next
/// state (delivered, retry at, undeliverable) and the subscription's health. Attempts finishing together are
/// recorded together (<see cref="AttemptRecorder"/>): one transaction for many, not one each.
/// </summary>
public sealed partial class WebhookSender(
    IServiceScopeFactory scopes,
    IHttpClientFactory httpClients,
    WebhookSecretProtector secrets,
    AttemptRecorder recorder,
    SqliteWriteGate gate,
    EndpointHolds holds,
    IOptions<WebhookOptions> options,
    TimeProvider clock,
    ILogger<WebhookSender> logger)
{
    public const string HttpClientName = "Gymwire.Webhooks";
    public const int MaxResponseExcerptBytes = 64 * 1024;

    private static readonly string[] KeptResponseHeaders = ["content-type", "content-length", "location", "retry-after", "server", "date"];

    private const string UserAgent = "Gymwire-Webhooks/1.0";

    private readonly WebhookOptions _options = options.Value;

    /// <summary>
    /// Atomically claims up to <paramref name="limit"/> due deliveries for <see cref="WebhookOptions.EffectiveClaimLease"/>
    /// and reads them with their subscriptions. PostgreSQL skips rows other nodes hold (<c>FOR UPDATE SKIP LOCKED</c>)
    /// and returns the ids it claimed; SQLite has one writer (one process, and in it the write gate), so there the due
    /// ids are read and claimed in one write transaction. A claim is a visibility timeout: it moves the delivery's due
    /// time to the end of the lease, so the due index's head holds only deliveries no worker has (left at their due
    /// time, every claim walked past every delivery in flight, up to <see cref="WebhookOptions.MaxConcurrentDeliveries"/>
    /// per node, with a table read each). The attempt's outcome sets the due time again; a claim given back without
    /// one restores it (<see cref="ReleaseAsync"/>); a claim whose worker died is due again at the lease's end.
    /// </summary>
    public async Task<IReadOnlyList<ClaimedDelivery>> ClaimAsync(int limit, Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var now = clock.GetUtcNow().UtcDateTime;
        var until = now + _options.EffectiveClaimLease;
        if (db.Provider == DatabaseProvider.Postgres)
        {
            // One transaction, so that the planner settings hold for the read too (SET LOCAL outside a transaction
            // block also has PostgreSQL log a warning, twice per claim).
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            var claimed = await db.Database.SqlQuery<ClaimedId>(WalkingTheQueue(PostgresClaim(now, until, limit, skipSubscriptions, skipDeliveries))).ToListAsync(ct);
            var read = claimed.Count == 0 ? [] : await ReadClaimed(db, [.. claimed.Select(c => c.Id)]).ToListAsync(ct);
            await tx.CommitAsync(ct);
            return InOrder(read, claimed);
        }
        List<ClaimedId> due;
        using (await gate.EnterAsync(db, ct))
        {
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            due = await Due(db, now, skipSubscriptions, skipDeliveries).OrderBy(x => x.NextAttemptAt).Take(limit)
                .Select(x => new ClaimedId(x.Id, x.NextAttemptAt!.Value)).ToListAsync(ct);
            if (due.Count > 0)
            {
                var ids = due.Select(c => c.Id).ToList();
                await db.WebhookDeliveries.Where(d => ids.Contains(d.Id))
                    .ExecuteUpdateAsync(s => s.SetProperty(d => d.LockedUntil, until).SetProperty(d => d.NextAttemptAt, until), ct);
            }
            await tx.CommitAsync(ct);
        }
        return due.Count == 0 ? [] : InOrder(await ReadClaimed(db, [.. due.Select(c => c.Id)]).ToListAsync(ct), due);
    }

    /// <summary>A claimed delivery's id and its due time before the claim.</summary>
    internal sealed record ClaimedId(Guid Id, DateTime NextAttemptAt);

    /// <summary>
    /// The claimed deliveries read by id (<see cref="Read"/>), unordered: sorting them is done in memory
    /// (<see cref="InOrder"/>), because on PostgreSQL the read runs with sorting disabled.
    /// </summary>
    internal static IQueryable<ClaimedDelivery> ReadClaimed(GymwireDbContext db, List<Guid> ids) => Read(db, db.WebhookDeliveries.Where(d => ids.Contains(d.Id)));

    /// <summary>The claimed deliveries in due order, each with its due time before the claim.</summary>
    private static List<ClaimedDelivery> InOrder(List<ClaimedDelivery> read, List<ClaimedId> claimed)
    {
        var due = claimed.ToDictionary(c => c.Id, c => c.NextAttemptAt);
        return [.. read.Select(d => d with { DueAt = due[d.Id] }).OrderBy(d => d.DueAt)];
    }

    /// <summary>
    /// PostgreSQL's claim: locks and leases the oldest due deliveries no other node holds, moves them to the lease's
    /// end, and returns their ids with their due times before it.
    /// </summary>
    internal static FormattableString PostgresClaim(DateTime now, DateTime until, int limit, Guid[] skipSubscriptions, Guid[] skipDeliveries) => $"""
        UPDATE webhook_deliveries AS d SET locked_until = {until}, next_attempt_at = {until}
        FROM (
            SELECT id, next_attempt_at FROM webhook_deliveries
            WHERE status IN ('pending', 'retrying') AND next_attempt_at <= {now}
              AND (locked_until IS NULL OR locked_until <= {now})
              AND NOT (subscription_id = ANY({skipSubscriptions})) AND NOT (id = ANY({skipDeliveries}))
            ORDER BY next_attempt_at
            LIMIT {limit}
            FOR UPDATE SKIP LOCKED) AS due
        WHERE d.id = due.id
        RETURNING d.id, due.next_attempt_at
        """;

    /// <summary>
    /// Prefixed to the PostgreSQL queue statements, in the same batch and inside the caller's transaction (the
    /// settings end with it): walk the due index in order and stop at the limit, never collect and sort the whole due
    /// set, and find rows by their indexes, never by a table scan. The planner chooses by its statistics, and a
    /// queue's go stale at once:
    /// - after a burst of thousands of new deliveries it still estimates a handful due, picks a bitmap scan and a
    ///   sort, and every claim then reads and sorts the whole burst (measured: 2-3 ms per claim of 16 with ~3,000 due,
    ///   and throughput a third of the usual);
    /// - analysed while (nearly) empty, it plans the claim's read of its deliveries by id, and of their last attempt
    ///   numbers, as table scans, and the prepared statement keeps that generic plan while the burst fills the tables
    ///   (measured with auto_explain: 50-300 ms per read, and ~1,200 deliveries a second instead of ~3,000).
    /// </summary>
    internal const string PostgresQueueWalk = "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off;";

    internal static FormattableString WalkingTheQueue(FormattableString sql) =>
        FormattableStringFactory.Create(PostgresQueueWalk + "\n" + sql.Format, sql.GetArguments());

    private static IQueryable<WebhookDelivery> Due(GymwireDbContext db, DateTime now, Guid[] skipSubscriptions, Guid[] skipDeliveries) =>
        db.WebhookDeliveries.Where(x => (x.Status == DeliveryStatus.Pending || x.Status == DeliveryStatus.Retrying)
            && x.NextAttemptAt <= now && (x.LockedUntil == null || x.LockedUntil <= now)
            && !skipSubscriptions.Contains(x.SubscriptionId) && !skipDeliveries.Contains(x.Id));

    /// <summary>
    /// The deliveries with their bodies (stored, or built from the outbox event, found by its unique id), their
    /// subscriptions and recorded attempt counts (the last number, by index).
    /// </summary>
    private static IQueryable<ClaimedDelivery> Read(GymwireDbContext db, IQueryable<WebhookDelivery> deliveries) =>
        from d in deliveries.AsNoTracking()
        join s in db.WebhookSubscriptions on d.SubscriptionId equals s.Id
        from e in db.OutboxEvents.Where(e => e.Id == d.EventId && e.GymId == d.GymId).DefaultIfEmpty()
        select new ClaimedDelivery(d.Id, d.GymId, d.SubscriptionId, d.Event,
            WebhookPayloads.For(d.Payload, d.EventId, d.Event, d.GymId, e == null ? null : e.Data, e == null ? null : e.OccurredAt),
            d.IsTest, d.AttemptCount, d.LastAttemptAt,
            db.WebhookAttempts.Where(a => a.GymId == d.GymId && a.DeliveryId == d.Id).Max(a => (int?)a.Number) ?? 0,
            s.Url, s.IsActive, s.SecretProtected, s.PreviousSecretProtected, s.PreviousSecretExpiresAt);

    /// <summary>
    /// When the next delivery this worker could claim becomes due (a retry, or a new delivery not yet due), if any.
    /// It walks the due index in order, so it costs the rows in front (in flight, or skipped), not the whole queue.
    /// A claim held by another node that lapses (the node died) is found by the poll interval's wake-up instead.
    /// </summary>
    public async Task<DateTime?> NextDueAsync(Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var now = clock.GetUtcNow().UtcDateTime;
        if (db.Provider == DatabaseProvider.Postgres)
        {
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            var next = (await db.Database.SqlQuery<DateTime?>(WalkingTheQueue($"""
                SELECT next_attempt_at AS "Value" FROM webhook_deliveries
                WHERE status IN ('pending', 'retrying') AND next_attempt_at IS NOT NULL
                  AND (locked_until IS NULL OR locked_until <= {now})
                  AND NOT (subscription_id = ANY({skipSubscriptions})) AND NOT (id = ANY({skipDeliveries}))
                ORDER BY next_attempt_at
                LIMIT 1
                """)).ToListAsync(ct)).FirstOrDefault();
            await tx.CommitAsync(ct);
            return next;
        }
        return await db.WebhookDeliveries.AsNoTracking()
            .Where(x => (x.Status == DeliveryStatus.Pending || x.Status == DeliveryStatus.Retrying) && x.NextAttemptAt != null
                && (x.LockedUntil == null || x.LockedUntil <= now)
                && !skipSubscriptions.Contains(x.SubscriptionId) && !skipDeliveries.Contains(x.Id))
            .OrderBy(x => x.NextAttemptAt)
            .Select(x => x.NextAttemptAt)
            .FirstOrDefaultAsync(ct);
    }

    /// <summary>
    /// Gives claims back without an attempt (shutdown, or a claim over the per-endpoint cap): each is due again at its
    /// due time before the claim, in its place in the queue, or at the end of its endpoint's hold if one has begun
    /// meanwhile (a hold's move passes claimed deliveries by). One statement per due time (a claim's deliveries of one
    /// event share theirs), in one write transaction.
    /// </summary>
    public async Task ReleaseAsync(IReadOnlyCollection<ClaimedDelivery> deliveries, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        using var turn = await gate.EnterAsync(db, ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        foreach (var group in deliveries.GroupBy(d => d.DueAt is { } due ? holds.DueAt(d.SubscriptionId, due) : (DateTime?)null))
        {
            var ids = group.Select(d => d.Id).ToList();
            var released = db.WebhookDeliveries.Where(d => ids.Contains(d.Id));
            _ = group.Key is { } due
                ? await released.ExecuteUpdateAsync(s => s.SetProperty(d => d.LockedUntil, (DateTime?)null).SetProperty(d => d.NextAttemptAt, due), ct)
                : await released.ExecuteUpdateAsync(s => s.SetProperty(d => d.LockedUntil, (DateTime?)null), ct);
        }
        await tx.CommitAsync(ct);
    }

    /// <summary>
    /// Moves a subscription's queued deliveries due at <paramref name="from"/> (and, when <paramref name="andEarlier"/>,
    /// before it) to <paramref name="to"/>, and returns how many: the moves of a paused endpoint's hold
    /// (<see cref="EndpointHolds"/>). Claimed ones are passed by: they are out of the claims' way until their lease
    /// ends, their attempt's outcome sets their time, and one given back without an attempt takes the hold's time
    /// (<see cref="ReleaseAsync"/>). Both shapes
    /// walk the due index (on SQLite, named: for a range it would otherwise pick the subscription's index and read its
    /// whole delivery log), so they cost the queue's head, never the log.
    /// </summary>
    public Task<int> MoveQueuedAsync(Guid subscriptionId, DateTime from, bool andEarlier, DateTime to, CancellationToken ct) =>
        MoveHeldAsync(subscriptionId, andEarlier ? "<=" : "=", from, to, "", ct);

    /// <summary>
    /// Makes one of a subscription's queued deliveries held at <paramref name="held"/> due at <paramref name="now"/>
    /// (a slow endpoint's next attempt) and returns 1, or 0 when none is held. Which one is left to the due index:
    /// deliveries carry no order to keep (they are not sent in order anyway), and sorting would read every held one.
    /// </summary>
    public Task<int> MoveOneQueuedAsync(Guid subscriptionId, DateTime held, DateTime now, CancellationToken ct) =>
        MoveHeldAsync(subscriptionId, "=", held, now, " LIMIT 1", ct);

    private async Task<int> MoveHeldAsync(Guid subscriptionId, string due, DateTime from, DateTime to, string limit, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        using var turn = await gate.EnterAsync(db, ct);
        var now = clock.GetUtcNow().UtcDateTime;
        return await db.Database.ExecuteSqlAsync(FormattableStringFactory.Create($$"""
            UPDATE webhook_deliveries SET next_attempt_at = {0}
            WHERE id IN (SELECT id FROM webhook_deliveries{{IndexHint(db)}}
                WHERE status IN ('pending', 'retrying') AND next_attempt_at {{due}} {1} AND subscription_id = {2}
                  AND (locked_until IS NULL OR locked_until <= {3}){{limit}}{{SkipLocked(db)}})
            """, to, from, subscriptionId, now), ct);
    }

    /// <summary>SQLite: the held moves name the due index (for a range it would pick the subscription's index and read its whole log).</summary>
    private static string IndexHint(GymwireDbContext db) => db.Provider == DatabaseProvider.Sqlite ? " INDEXED BY ix_webhook_deliveries_due" : "";

    /// <summary>
    /// PostgreSQL: a held move never waits for a row lock. A locked row is being claimed, given back or recorded, and
    /// those statements lock their rows in another order than the move's walk of the due index: waiting would risk a
    /// deadlock (measured: the worker's release of over-cap claims failed so, and the worker stalled until woken).
    /// </summary>
    private static string SkipLocked(GymwireDbContext db) => db.Provider == DatabaseProvider.Postgres ? " FOR UPDATE SKIP LOCKED" : "";

    /// <summary>Attempts a delivery that no worker can claim (a test send: it has no due time) and returns once it is recorded.</summary>
    public async Task<AttemptOutcome?> AttemptAsync(Guid deliveryId, CancellationToken ct)
    {
        ClaimedDelivery? delivery;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            delivery = await Read(db, db.WebhookDeliveries.Where(d => d.Id == deliveryId
                && d.Status != DeliveryStatus.Delivered && d.Status != DeliveryStatus.Undeliverable)).FirstOrDefaultAsync(ct);
        }
        return delivery is null ? null : await AttemptAsync(delivery, ct);
    }

    /// <summary>
    /// Makes one attempt of a claimed delivery and returns once it is recorded. Cancelling <paramref name="ct"/>
    /// (shutdown) abandons the attempt unrecorded and releases the claim, so another worker or the next start retries it.
    /// </summary>
    public async Task<AttemptOutcome?> AttemptAsync(ClaimedDelivery delivery, CancellationToken ct)
    {
        if (!delivery.SubscriptionActive)
        {
            // Deliveries queued for a subscription that has since been deactivated are not sent.
            return await recorder.RecordAsync(new AttemptRecord(delivery, null, null, clock.GetUtcNow().UtcDateTime));
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var attempt = new WebhookAttempt
        {
            Id = Guid.CreateVersion7(now),
            GymId = delivery.GymId,
            DeliveryId = delivery.Id,
            Number = delivery.AttemptsRecorded + 1,
            AttemptedAt = now,
            Trigger = delivery.AttemptCount > 0 ? "retry" : delivery.LastAttemptAt is not null ? "redeliver" : delivery.IsTest ? "test" : "initial",
        };
        TimeSpan? retryAfter;
        try
        {
            retryAfter = await SendAsync(delivery, attempt, ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            await ReleaseAsync([delivery], CancellationToken.None);
            throw;
        }
        // Retries count from the end of the failed attempt.
        return await recorder.RecordAsync(new AttemptRecord(delivery, attempt, retryAfter, clock.GetUtcNow().UtcDateTime));
    }

    /// <summary>POSTs the delivery and fills in <paramref name="attempt"/>; returns the receiver's Retry-After, if any.</summary>
    private async Task<TimeSpan?> SendAsync(ClaimedDelivery delivery, WebhookAttempt attempt, CancellationToken ct)
    {
        if (!_options.AllowHttp && !delivery.Url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            // Saved while Webhooks:AllowHttp was on; the operator has since turned it off.
            attempt.Error = "Plain http:// is not allowed (Webhooks:AllowHttp is false): change the webhook URL to https://";
            return null;
        }
        if (delivery.Payload is null)
        {
            attempt.Error = "The delivery's event is missing from outbox_events (deleted by hand?): there is no body to send";
            return null;
        }
        var body = Encoding.UTF8.GetBytes(delivery.Payload);
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
        try
        {
            using var client = httpClients.CreateClient(HttpClientName);
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token);
            attempt.StatusCode = (int)response.StatusCode;
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
        }
        catch (HttpRequestException e)
        {
            attempt.Error = Describe(e);
            if (e.InnerException is EgressRefusedException)
            {
                LogEgressRefused(logger, delivery.Id, delivery.SubscriptionId, attempt.Error);
            }
        }
        catch (EgressRefusedException e)
        {
            attempt.Error = e.Message;
            LogEgressRefused(logger, delivery.Id, delivery.SubscriptionId, attempt.Error);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            // A connect-level timeout can surface before the attempt's own token reports it.
            attempt.Error = $"Timed out after {_options.Timeout.TotalSeconds:0.###} s";
        }
        catch (Exception e) when (!ct.IsCancellationRequested && e is InvalidOperationException or UriFormatException or NotSupportedException or IOException)
        {
            attempt.Error = "The request could not be sent: " + e.Message;
        }
        attempt.DurationMs = (int)Math.Min(int.MaxValue, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return retryAfter;
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

    private static string SelectHeaders(HttpResponseMessage response)
    {
        var kept = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            var lower = name.ToLowerInvariant();
            if (KeptResponseHeaders.Contains(lower))
            {
                kept[lower] = Truncate(string.Join(", ", values), 500)!;
            }
        }
        return JsonSerializer.Serialize(kept, GymwireJson.Options);
    }

    /// <summary>
    /// Reads at most 64 KiB of the body, then stops: the rest is never read, let alone buffered. What is stored is at
    /// most 64 KiB too, as UTF-8: bytes that are not text (NUL, invalid UTF-8) decode to U+FFFD, three bytes each, so a
    /// binary body's excerpt is cut at the last whole character within the limit (and marked truncated). The text is
    /// decoded, cleaned and cut in pooled buffers, and the one string made is the excerpt itself: a 64 KiB body as
    /// strings is over the large-object threshold, and three of them per attempt (decoded, cleaned, cut) to a receiver
    /// that answers with megabytes were the worker's largest allocations.
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
            // PostgreSQL text cannot hold NUL; a binary body is only an excerpt for a human anyway.
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

    private static string? Truncate(string? value, int max) => value is null || value.Length <= max ? value : value[..max];

    [LoggerMessage(EventId = 5104, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} to subscription {SubscriptionId} refused by the egress guard: {Reason}")]
    private static partial void LogEgressRefused(ILogger logger, Guid deliveryId, Guid subscriptionId, string reason);
}
