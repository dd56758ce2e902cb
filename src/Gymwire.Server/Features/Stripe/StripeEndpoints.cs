using System.Text;
using StripeEvents = global::Stripe.EventUtility;
using StripeException = global::Stripe.StripeException;

namespace Gymwire.Features.Stripe;

public sealed record StripeWebhookAck(bool Received, string EventId, string Outcome, bool Duplicate);
public sealed record StripeConnectionDto(bool Configured, string? SecretHint, string WebhookPath, DateTime? ConfiguredAt,
    DateTime? LastEventAt, DateTime? LastFailureAt, string? LastFailure);
public sealed record SetStripeSecretRequest(string? EndpointSecret);
public sealed record StripeEventDto(Guid Id, string StripeEventId, string Type, DateTime ReceivedAt, string Outcome, string? Detail,
    string? CustomerId, string? Email);
public sealed record StripeEventList(IReadOnlyList<StripeEventDto> Events);

/// <summary>
/// Payments in from Stripe. Stripe posts signed events to the gym's webhook URL; the owner sets the endpoint's signing
/// secret through the API. Every verified event is recorded once (Stripe's event id is unique per gym) with what became of it.
/// </summary>
public static partial class StripeEndpoints
{
    public const string SignatureHeader = "Stripe-Signature";
    public const string WebhookPath = "/api/integrations/stripe/webhook";

    /// <summary>
    /// The answer to a post whose signature does not verify, whatever the reason: a gym without Stripe connected gets
    /// the same, so that an anonymous caller cannot tell which gyms have it. The reason goes to the gym's connection
    /// (the Payments tile) and the debug log.
    /// </summary>
    public const string SignatureRejected = "Invalid Stripe webhook: the signature does not verify with the endpoint's signing secret";

    public static IEndpointRouteBuilder MapStripe(this IEndpointRouteBuilder app)
    {
        // Stripe signs, so these are anonymous; the signature is the authentication. Anyone can post, so posts are
        // limited per client address.
        var hooks = app.MapGroup(WebhookPath).WithTags("Stripe").AllowAnonymous().RequireRateLimiting(RateLimitPolicies.StripeWebhooks);
        hooks.MapPost("/", Receive)
            .WithSummary("Receive a Stripe event (the gym is named by ?gym= or found by whose secret verifies the signature)");
        hooks.MapPost("/{gymId:guid}", ReceiveForGym).WithSummary("Receive a Stripe event for one gym");

        var settings = app.MapGroup("/api/gym/integrations/stripe").WithTags("Stripe").RequireAuthorization(Policies.Owner);
        settings.MapGet("/", Get).WithSummary("Stripe connection status (never the secret)");
        settings.MapPut("/", SetSecret).RequireRateLimiting(RateLimitPolicies.Mutations).WithSummary("Set the Stripe webhook endpoint's signing secret");
        settings.MapDelete("/", Disconnect).RequireRateLimiting(RateLimitPolicies.Destructive).WithSummary("Disconnect Stripe (forget the secret)");
        settings.MapGet("/events", ListEvents).WithSummary("Stripe events received, newest first, with what became of each");
        settings.MapPost("/events/{id:guid}/reprocess", Reprocess).RequireRateLimiting(RateLimitPolicies.Mutations)
            .WithSummary("Process a kept event that matched nothing (unknown_member, unknown_payment, unknown_subscription) again, once what it needs is in Gymwire");
        return app;
    }

    internal static Task<Results<Ok<StripeWebhookAck>, BadRequest<ErrorResponse>>> ReceiveForGym(
        Guid gymId, HttpRequest request, GymwireDbContext db, StripeSecrets secrets, StripeEventMapper mapper,
        IOptions<StripeOptions> options, TimeProvider clock, StripeMetrics metrics, ILogger<StripeEventMapper> logger, CancellationToken ct) =>
        ReceiveAsync(gymId, request, db, secrets, mapper, options.Value, clock, metrics, logger, ct);

    internal static Task<Results<Ok<StripeWebhookAck>, BadRequest<ErrorResponse>>> Receive(
        [FromQuery(Name = "gym")] Guid? gym, HttpRequest request, GymwireDbContext db, StripeSecrets secrets, StripeEventMapper mapper,
        IOptions<StripeOptions> options, TimeProvider clock, StripeMetrics metrics, ILogger<StripeEventMapper> logger, CancellationToken ct) =>
        ReceiveAsync(gym, request, db, secrets, mapper, options.Value, clock, metrics, logger, ct);

    private static async Task<Results<Ok<StripeWebhookAck>, BadRequest<ErrorResponse>>> ReceiveAsync(
        Guid? gymId, HttpRequest request, GymwireDbContext db, StripeSecrets secrets, StripeEventMapper mapper,
        StripeOptions options, TimeProvider clock, StripeMetrics metrics, ILogger logger, CancellationToken ct)
    {
        var (result, outcome) = await ProcessAsync(gymId, request, db, secrets, mapper, options, clock, logger, ct);
        metrics.Received(outcome);
        return result;
    }

    private static async Task<(Results<Ok<StripeWebhookAck>, BadRequest<ErrorResponse>> Result, string Outcome)> ProcessAsync(
        Guid? gymId, HttpRequest request, GymwireDbContext db, StripeSecrets secrets, StripeEventMapper mapper,
        StripeOptions options, TimeProvider clock, ILogger logger, CancellationToken ct)
    {
        const string rejected = StripeMetrics.Outcomes.Rejected;
        string json;
        using (var reader = new StreamReader(request.Body, Encoding.UTF8))
        {
            json = await reader.ReadToEndAsync(ct);
        }
        // Read whatever its content type says, so checked here as JsonBodyGuard checks JSON bodies: a U+0000 in an id
        // would fail PostgreSQL's insert and pass SQLite's.
        if (JsonBodyGuard.FindForbidden(Encoding.UTF8.GetBytes(json)) is { } forbidden)
        {
            return (ApiErrors.BadRequest(forbidden), StripeMetrics.Outcomes.Invalid);
        }
        string? header = request.Headers[SignatureHeader];
        if (string.IsNullOrWhiteSpace(header))
        {
            return (ApiErrors.BadRequest($"Missing {SignatureHeader} header"), rejected);
        }
        if (gymId is null && !options.MatchGymBySecret)
        {
            return (ApiErrors.BadRequest($"Name the gym: {WebhookPath}/{{gym_id}} or {WebhookPath}?gym={{gym_id}}"), rejected);
        }

        var accounts = await db.StripeAccounts.Where(a => gymId == null || a.GymId == gymId).ToListAsync(ct);
        var now = clock.GetUtcNow();
        // Stripe.net checks the timestamp against the time we pass, so the tolerance follows TimeProvider (and the fake clock in tests).
        var tolerance = (long)options.SignatureTolerance.TotalSeconds;
        StripeAccount? account = null;
        global::Stripe.Event? stripeEvent = null;
        string? failure = null;
        // Only a sender holding a gym's secret can cause these, so they are told to the caller as they are.
        string? verifiedFailure = null;
        foreach (var candidate in accounts)
        {
            if (secrets.Unprotect(candidate.GymId, candidate.ProtectedEndpointSecret) is not { } secret)
            {
                failure = StripeSecrets.CannotDecrypt;
                continue;
            }
            try
            {
                var verified = StripeEvents.ConstructEvent(json, header, secret, tolerance, now.ToUnixTimeSeconds(), throwOnApiVersionMismatch: false);
                if (account is not null)
                {
                    // Matched by secret, and two gyms hold this one: recording it in either could be the wrong gym's.
                    (account, stripeEvent) = (null, null);
                    verifiedFailure = $"More than one gym's Stripe endpoint secret verifies this signature: send each gym's events to {WebhookPath}/{{gym_id}}";
                    break;
                }
                (account, stripeEvent) = (candidate, verified);
                if (gymId is not null)
                {
                    break;
                }
            }
            catch (StripeException e)
            {
                failure = DescribeSignatureFailure(e);
            }
            // Stripe.net checks the signature before it reads the body, so these are a signed body that is not an event
            // (a JSON array, a number): the sender's mistake. Its reader throws InvalidOperationException for a non-object.
            catch (Exception e) when (e is JsonException or Newtonsoft.Json.JsonException or ArgumentException or InvalidOperationException)
            {
                verifiedFailure = "The body is not a Stripe event";
            }
        }
        if (account is null || stripeEvent is null)
        {
            failure = verifiedFailure ?? failure ?? (gymId is null ? "No gym's Stripe endpoint secret verifies this signature" : "Stripe is not connected for this gym");
            // Anyone can post here, so a rejection is written at most once per FailureRecordInterval: forged posts
            // cannot turn into a database write each.
            if (gymId is not null && accounts.Count == 1
                && !(accounts[0].LastFailureAt > now.UtcDateTime - FailureRecordInterval && accounts[0].LastFailureAt <= now.UtcDateTime))
            {
                accounts[0].LastFailureAt = now.UtcDateTime;
                accounts[0].LastFailure = ColumnText.Fit($"Rejected a webhook: {failure}.", 500);
                await db.SaveChangesAsync(ct);
            }
            LogRejected(logger, gymId, failure);
            return (ApiErrors.BadRequest(verifiedFailure is null ? SignatureRejected : $"Invalid Stripe webhook: {verifiedFailure}"), rejected);
        }

        var eventId = stripeEvent.Id ?? "";
        var type = stripeEvent.Type ?? "";
        if (eventId.Length is 0 or > 255 || type.Length is 0 or > 100)
        {
            return (ApiErrors.BadRequest("The Stripe event has no id or type"), StripeMetrics.Outcomes.Invalid);
        }
        if (await db.StripeEvents.AnyAsync(e => e.GymId == account.GymId && e.StripeEventId == eventId, ct))
        {
            LogDuplicate(logger, account.GymId, eventId);
            return (TypedResults.Ok(new StripeWebhookAck(true, eventId, await OutcomeAsync(db, account.GymId, eventId, ct), Duplicate: true)),
                StripeMetrics.Outcomes.Duplicate);
        }

        using var document = JsonDocument.Parse(json);
        var at = now.UtcDateTime;
        for (var attempt = 1; ; attempt++)
        {
            var mapping = await MapAsync(mapper, account.GymId, type, document.RootElement, at, ct);
            Keep(mapping, attempt == 1);
            var links = db.ChangeTracker.Entries<StripeLink>().Where(e => e.State == EntityState.Added)
                .Select(e => (e.Entity.Kind, e.Entity.StripeId)).ToList();
            try
            {
                // The event row, the payment (or membership) and its outbox event commit together.
                await db.SaveChangesAsync(ct);
                LogReceived(logger, account.GymId, eventId, type, mapping.Outcome);
                return (TypedResults.Ok(new StripeWebhookAck(true, eventId, mapping.Outcome, Duplicate: false)), mapping.Outcome);
            }
            catch (DbUpdateException e)
            {
                db.ChangeTracker.Clear();
                // The payment or membership it changes was changed meanwhile (the owner refunded or canceled it through
                // the API): mapped again, this event sees that.
                if (e is DbUpdateConcurrencyException && attempt < MaxMappings)
                {
                    continue;
                }
                // Stripe retried while the first delivery was still being processed; the unique index let one win.
                if (await db.StripeEvents.AnyAsync(e => e.GymId == account.GymId && e.StripeEventId == eventId, ct))
                {
                    return (TypedResults.Ok(new StripeWebhookAck(true, eventId, await OutcomeAsync(db, account.GymId, eventId, ct), Duplicate: true)),
                        StripeMetrics.Outcomes.Duplicate);
                }
                // Another event about the same invoice, customer or price (invoice.paid and invoice.payment_succeeded
                // come together) committed a link this one also added. Mapped again, this event sees it, and ends as
                // if it had arrived second; each round one of the racing events commits, so a burst needs a few.
                var raced = await AnyLinkCommittedAsync(db, account.GymId, links, ct);
                if (raced && attempt < MaxMappings)
                {
                    continue;
                }
                // Still racing, two writers meeting, or a payment changed under it each time: answered 503, and
                // Stripe's retry maps it afresh.
                if (raced)
                {
                    throw new DbUpdateConcurrencyException("Other events about the same Stripe objects kept committing first", e);
                }
                // A conflict, or a failure of the database itself (a lost connection, a timeout, a full disk): answered
                // with an error, so that Stripe sends the event again; kept as ignored it would be lost for good.
                if (ErrorHandling.IsConcurrencyConflict(e) || ErrorHandling.IsLostRace(e) || !ErrorHandling.IsDataRefused(e))
                {
                    throw;
                }
                // The database refuses what the event tells (a value it cannot store), and would on every retry: the
                // event is kept, saying so, rather than answered 500 for Stripe to send again for days.
                LogNotApplied(logger, e, account.GymId, eventId, type);
                var notApplied = new StripeMapping(StripeOutcomes.Ignored,
                    "Gymwire could not record what this event tells (the database refused it; the server's log has the error); nothing changed.",
                    mapping.CustomerId, mapping.Email);
                Keep(notApplied, firstMapping: false);
                await db.SaveChangesAsync(ct);
                LogReceived(logger, account.GymId, eventId, type, notApplied.Outcome);
                return (TypedResults.Ok(new StripeWebhookAck(true, eventId, notApplied.Outcome, Duplicate: false)), notApplied.Outcome);
            }
        }

        // Adds the event's row with what its mapping did, and the account's time of its last event.
        void Keep(StripeMapping mapping, bool firstMapping)
        {
            db.StripeEvents.Add(new StripeEventRecord
            {
                Id = Guid.CreateVersion7(at), GymId = account.GymId, StripeEventId = eventId, Type = type, ReceivedAt = at,
                Outcome = mapping.Outcome, Detail = ColumnText.Fit(mapping.Detail, 1000), CustomerId = ColumnText.Fit(mapping.CustomerId, 255),
                Email = ColumnText.Fit(mapping.Email, 320), Payload = json,
            });
            if (firstMapping)
            {
                account.LastEventAt = at;
            }
            else
            {
                // The cleared context forgot the account; its LastEventAt is already set, so mark it to be written.
                db.StripeAccounts.Attach(account).Property(a => a.LastEventAt).IsModified = true;
            }
        }
    }

    private static async Task<StripeMapping> MapAsync(StripeEventMapper mapper, Guid gymId, string type, JsonElement stripeEvent, DateTime now, CancellationToken ct) =>
        StripeEventMapper.DataObject(stripeEvent) is { } obj
            ? await mapper.MapAsync(gymId, type, obj, now, StripeEventMapper.CreatedOf(stripeEvent, now), ct)
            : new StripeMapping(StripeOutcomes.Ignored, "The event carries no data object.");

    /// <summary>The outcomes of events that matched nothing in Gymwire, and may match once the member, payment or membership is there.</summary>
    public static readonly string[] Reprocessable = [StripeOutcomes.UnknownMember, StripeOutcomes.UnknownPayment, StripeOutcomes.UnknownSubscription];

    /// <summary>
    /// Maps a kept event again, as if it arrived now: Stripe does not resend an event it was answered 200 for, so a
    /// member added later, or a subscription whose creation came after its cancellation, needs the owner to say so.
    /// </summary>
    internal static async Task<Results<Ok<StripeEventDto>, NotFound<ErrorResponse>, Conflict<ErrorResponse>>> Reprocess(
        Guid id, ClaimsPrincipal user, GymwireDbContext db, StripeEventMapper mapper, SqliteWriteGate gate, TimeProvider clock, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        var record = await db.StripeEvents.AsNoTracking().FindInGymAsync(id, gymId, ct);
        if (record is null)
        {
            return ApiErrors.NotFound("Stripe event not found");
        }
        if (!Reprocessable.Contains(record.Outcome, StringComparer.Ordinal))
        {
            return ApiErrors.Conflict($"Only events that matched nothing ({string.Join(", ", Reprocessable)}) can be processed again; this one is {record.Outcome}");
        }
        var now = clock.GetUtcNow().UtcDateTime;
        StripeMapping mapping;
        using (var document = JsonDocument.Parse(record.Payload))
        {
            mapping = await MapAsync(mapper, gymId, record.Type, document.RootElement, now, ct);
        }
        var detail = ColumnText.Fit($"{mapping.Detail} (Processed again on {now.ToString("u", CultureInfo.InvariantCulture)}.)", 1000);
        using var writeLock = await gate.EnterAsync(db, ct);
        await using var transaction = await db.Database.BeginTransactionAsync(ct);
        // Only while it is still as read: of two at once (a double click), one applies what it maps to.
        var claimed = await db.StripeEvents.Where(e => e.Id == id && e.GymId == gymId && e.Outcome == record.Outcome)
            .ExecuteUpdateAsync(u => u.SetProperty(e => e.Outcome, mapping.Outcome).SetProperty(e => e.Detail, detail), ct);
        if (claimed == 0)
        {
            return ApiErrors.Conflict("The event was processed again meanwhile; see its outcome in the list of events");
        }
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException e) when (ErrorHandling.IsUniqueViolation(e))
        {
            // Another event about the same invoice, subscription or customer committed meanwhile: mapped again, this one sees it.
            return ApiErrors.Conflict("Another Stripe event about the same object was recorded meanwhile; process this one again");
        }
        await transaction.CommitAsync(ct);
        return TypedResults.Ok(new StripeEventDto(record.Id, record.StripeEventId, record.Type, record.ReceivedAt, mapping.Outcome, detail, record.CustomerId, record.Email));
    }

    /// <summary>The least time between two rejections written to a gym's connection (the owner sees the latest).</summary>
    public static readonly TimeSpan FailureRecordInterval = TimeSpan.FromMinutes(1);

    /// <summary>How many times one delivery is mapped while other events about the same Stripe objects commit first.</summary>
    private const int MaxMappings = 5;

    private static async Task<bool> AnyLinkCommittedAsync(GymwireDbContext db, Guid gymId, List<(string Kind, string StripeId)> links, CancellationToken ct)
    {
        var stripeIds = links.Select(l => l.StripeId).Distinct().ToList();
        var committed = await db.StripeLinks.AsNoTracking().Where(l => l.GymId == gymId && stripeIds.Contains(l.StripeId))
            .Select(l => new { l.Kind, l.StripeId }).ToListAsync(ct);
        return committed.Any(l => links.Contains((l.Kind, l.StripeId)));
    }

    private static Task<string> OutcomeAsync(GymwireDbContext db, Guid gymId, string eventId, CancellationToken ct) =>
        db.StripeEvents.Where(e => e.GymId == gymId && e.StripeEventId == eventId).Select(e => e.Outcome).FirstAsync(ct);

    // Stripe.net's messages are safe to show (they never contain the secret); keep the first sentence.
    private static string DescribeSignatureFailure(StripeException e)
    {
        var message = e.Message;
        if (message.Contains("tolerance", StringComparison.OrdinalIgnoreCase))
        {
            return "the signature's timestamp is outside the allowed tolerance";
        }
        if (message.Contains("header", StringComparison.OrdinalIgnoreCase) && message.Contains("format", StringComparison.OrdinalIgnoreCase))
        {
            return "the Stripe-Signature header is malformed";
        }
        return "the signature does not match the body and the endpoint secret";
    }

    internal static async Task<Ok<StripeConnectionDto>> Get(ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        var account = await db.StripeAccounts.AsNoTracking().FirstOrDefaultAsync(a => a.GymId == gymId, ct);
        return TypedResults.Ok(Map(gymId, account));
    }

    internal static async Task<Results<Ok<StripeConnectionDto>, BadRequest<ErrorResponse>>> SetSecret(
        SetStripeSecretRequest request, ClaimsPrincipal user, GymwireDbContext db, StripeSecrets secrets, TimeProvider clock, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        var (account, invalid) = await StripeService.SaveSecretAsync(gymId, request.EndpointSecret, db, secrets, clock, ct);
        return account is null ? ApiErrors.BadRequest(invalid!) : TypedResults.Ok(Map(gymId, account));
    }

    internal static async Task<NoContent> Disconnect(ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        await db.StripeAccounts.Where(a => a.GymId == gymId).ExecuteDeleteAsync(ct);
        return TypedResults.NoContent();
    }

    internal static Task<Results<Ok<StripeEventList>, BadRequest<ErrorResponse>>> ListEvents(
        ClaimsPrincipal user, GymwireDbContext db, int? limit, int? offset, string? outcome, CancellationToken ct) =>
        db.StripeEvents.ListInGymAsync(user.GetGymId(), limit, offset, e => e.ReceivedAt, StripeService.ToEventDto, items => new StripeEventList(items), ct,
            new("outcome", "outcomes", outcome, StripeOutcomes.All, e => e.Outcome == outcome));

    private static StripeConnectionDto Map(Guid gymId, StripeAccount? a) =>
        new(a is not null, a?.SecretHint, $"{WebhookPath}/{gymId}", a?.ConfiguredAt, a?.LastEventAt, a?.LastFailureAt, a?.LastFailure);


    // Debug: anyone can post, so rejections must not fill the log; gymwire.stripe.events counts them (outcome rejected),
    // and a gym's connection keeps the latest for its owner.
    [LoggerMessage(EventId = 8101, Level = LogLevel.Debug, Message = "Rejected a Stripe webhook for gym {GymId}: {Reason}")]
    private static partial void LogRejected(ILogger logger, Guid? gymId, string reason);

    [LoggerMessage(EventId = 8102, Level = LogLevel.Information, Message = "Stripe event {EventId} ({Type}) for gym {GymId}: {Outcome}")]
    private static partial void LogReceived(ILogger logger, Guid gymId, string eventId, string type, string outcome);

    [LoggerMessage(EventId = 8104, Level = LogLevel.Error, Message = "Stripe event {EventId} ({Type}) for gym {GymId} could not be applied; it is kept as ignored")]
    private static partial void LogNotApplied(ILogger logger, Exception exception, Guid gymId, string eventId, string type);

    [LoggerMessage(EventId = 8103, Level = LogLevel.Debug, Message = "Stripe event {EventId} for gym {GymId} was already received; acknowledged again")]
    private static partial void LogDuplicate(ILogger logger, Guid gymId, string eventId);
}
