using System.Linq.Expressions;

namespace Gymwire.Features.Webhooks;

public enum WebhookFailure
{
    BadRequest,
    NotFound,
    Conflict,
    /// <summary>The caller's API key was revoked or expired after it authenticated the request.</summary>
    KeyInvalid,
    /// <summary>The caller's API key may not do this to the webhook (switch on one the owner switched off).</summary>
    Forbidden,
}

/// <summary>The result of a webhook operation: a value, or why there is none (in words fit for an owner).</summary>
public sealed record WebhookOutcome<T>(T? Value, WebhookFailure Failure = default, string Error = "") where T : class
{
    public static WebhookOutcome<T> Ok(T value) => new(value);
    public static WebhookOutcome<T> Fail(WebhookFailure failure, string error) => new(null, failure, error);
}

/// <summary>
/// Whose subscriptions a caller may see and manage: the owner, all of the gym's; an API key, only those it created
/// (a Zapier key must not read or repoint the owner's webhooks, nor another integration's).
/// </summary>
public readonly record struct WebhookAccess(Guid GymId, Guid? ApiKeyId)
{
    public static WebhookAccess Of(ClaimsPrincipal user) => new(user.GetGymId(), user.IsApiKey() ? user.GetActorId() : null);

    public static WebhookAccess Owner(Guid gymId) => new(gymId, null);
}

/// <summary>
/// Managing a gym's webhook subscriptions and their deliveries: shared by the management API and the dashboard.
/// Every query is filtered by the gym and by <see cref="WebhookAccess"/>, so ids the caller may not see are simply not found.
/// </summary>
public sealed class WebhookService(
    GymwireDbContext db, WebhookSecretProtector protector, EgressGuard guard, IOptions<WebhookOptions> options,
    IDeliveryQueue queue, Attempt attempt, AttemptRecorder recorder, DeliverySignal signal, TimeProvider clock, DeliveryMetrics metrics,
    SqliteWriteGate gate)
{
    public const string WebhookNotFound = "Webhook not found";
    public const string DeliveryNotFound = "Delivery not found";
    public const string KeyInvalid = "This API key has been revoked or has expired";
    public const string SwitchedOffByOwner = "The gym's owner switched this webhook off; only the owner can switch it on again";
    public const string KeptChanging = "The webhook was switched on again each time it was being switched off; try again in a moment";
    private const int MaxEvents = 50;
    public const int MaxDescription = 200;

    public async Task<List<WebhookDto>> ListAsync(WebhookAccess access, CancellationToken ct)
    {
        var rows = await Visible(db.WebhookSubscriptions.AsNoTracking(), access)
            .OrderBy(s => s.CreatedAt).ThenBy(s => s.Id).ToListAsync(ct);
        return rows.Select(ToDto).ToList();
    }

    public Task<WebhookSubscription?> FindAsync(WebhookAccess access, Guid id, CancellationToken ct, bool tracking = false)
    {
        var query = tracking ? db.WebhookSubscriptions : db.WebhookSubscriptions.AsNoTracking();
        return Visible(query, access).FirstOrDefaultAsync(s => s.Id == id, ct);
    }

    internal static IQueryable<WebhookSubscription> Visible(IQueryable<WebhookSubscription> query, WebhookAccess access)
    {
        query = query.Where(s => s.GymId == access.GymId);
        return access.ApiKeyId is { } keyId ? query.Where(s => s.ApiKeyId == keyId) : query;
    }

    public async Task<WebhookDto?> GetAsync(WebhookAccess access, Guid id, CancellationToken ct) =>
        await FindAsync(access, id, ct) is { } s ? ToDto(s) : null;

    public async Task<WebhookOutcome<CreatedWebhook>> CreateAsync(
        WebhookAccess access, string? url, List<string>? requestedEvents, string? secret, CancellationToken ct, string? description = null)
    {
        var eventsError = ValidateEvents(requestedEvents, out var events);
        var error = ValidateUrl(ref url, options.Value, guard) ?? eventsError
            ?? (secret is null ? null : WebhookSigner.ValidateSecret(secret)) ?? ValidateDescription(ref description);
        if (error is not null)
        {
            return WebhookOutcome<CreatedWebhook>.Fail(WebhookFailure.BadRequest, error);
        }
        var now = clock.GetUtcNow().UtcDateTime;
        secret ??= WebhookSigner.NewSecret();
        var subscription = new WebhookSubscription
        {
            Id = Guid.CreateVersion7(now),
            GymId = access.GymId,
            ApiKeyId = access.ApiKeyId,
            Url = url!,
            Description = description,
            Events = events,
            IsActive = true,
            CreatedAt = now,
            UpdatedAt = now,
            SecretProtected = protector.Protect(secret),
        };
        db.WebhookSubscriptions.Add(subscription);
        if (await SaveAsync(access, subscription, deactivated: false, reactivated: false, now, ct) is not null)
        {
            return WebhookOutcome<CreatedWebhook>.Fail(WebhookFailure.KeyInvalid, KeyInvalid);
        }
        var dto = ToDto(subscription);
        return WebhookOutcome<CreatedWebhook>.Ok(
            new CreatedWebhook(dto.Id, dto.Url, dto.Events, dto.IsActive, dto.CreatedAt, dto.DisabledReason, dto.DisabledAt, dto.ApiKeyId, secret, dto.Description,
                dto.SwitchedOffByOwner));
    }

    /// <summary>
    /// Changes what is given (null leaves a field as it is). Activating clears an automatic deactivation. An API key may
    /// not switch on a webhook the owner switched off (<see cref="WebhookSubscription.SwitchedByOwner"/>).
    /// </summary>
    public async Task<WebhookOutcome<WebhookDto>> UpdateAsync(
        WebhookAccess access, Guid id, string? url, List<string>? requestedEvents, bool? isActive, CancellationToken ct, string? description = null)
    {
        var eventsError = ValidateEvents(requestedEvents, out var events);
        var clearDescription = description is not null && description.Trim().Length == 0;
        var error = (url is null ? null : ValidateUrl(ref url, options.Value, guard)) ?? eventsError ?? ValidateDescription(ref description);
        if (error is not null)
        {
            return WebhookOutcome<WebhookDto>.Fail(WebhookFailure.BadRequest, error);
        }
        return await RetryConflictsAsync(() => TryUpdateAsync(access, id, url, requestedEvents, events, isActive, description, clearDescription, ct));
    }

    /// <summary>
    /// Runs <paramref name="attempt"/> (a read and a write) again while it meets <see cref="WebhookFailure.Conflict"/>: the
    /// owner's switch-off of a webhook read as off, which a key switched on meanwhile. At most
    /// <see cref="ErrorHandling.ConflictTries"/> times, so that a key switching it on and off without pause cannot keep the
    /// request going; the last conflict is the answer then.
    /// </summary>
    private static async Task<WebhookOutcome<WebhookDto>> RetryConflictsAsync(Func<Task<WebhookOutcome<WebhookDto>>> attempt)
    {
        for (var tries = 1; ; tries++)
        {
            var outcome = await attempt();
            if (outcome.Failure != WebhookFailure.Conflict || tries == ErrorHandling.ConflictTries)
            {
                return outcome;
            }
        }
    }

    /// <summary>One read and write of <see cref="UpdateAsync"/>; <see cref="WebhookFailure.Conflict"/> when a key switched the webhook on after the read.</summary>
    private async Task<WebhookOutcome<WebhookDto>> TryUpdateAsync(WebhookAccess access, Guid id, string? url, List<string>? requestedEvents, List<string> events,
        bool? isActive, string? description, bool clearDescription, CancellationToken ct)
    {
        if (await FindAsync(access, id, ct, tracking: true) is not { } subscription)
        {
            return WebhookOutcome<WebhookDto>.Fail(WebhookFailure.NotFound, WebhookNotFound);
        }
        // The owner switches a misbehaving integration's webhook off; the integration's key must not switch it straight back on.
        // Checked again in the write's transaction (SaveAsync), since the owner may switch it off after this read.
        if (access.ApiKeyId is not null && isActive == true && !subscription.IsActive && subscription.SwitchedByOwner)
        {
            return WebhookOutcome<WebhookDto>.Fail(WebhookFailure.Forbidden, SwitchedOffByOwner);
        }
        var now = clock.GetUtcNow().UtcDateTime;
        if (url is not null)
        {
            subscription.Url = url;
        }
        if (requestedEvents is not null)
        {
            subscription.Events = events;
        }
        if (description is not null || clearDescription)
        {
            subscription.Description = description;
        }
        var deactivated = isActive == false && subscription.IsActive;
        var reactivated = isActive == true && !subscription.IsActive;
        if (isActive is { } active && active != subscription.IsActive)
        {
            subscription.IsActive = active;
            subscription.DisabledReason = null;
            subscription.DisabledAt = active ? null : now;
            // Switched on or off, the endpoint starts afresh: no failures counted, no pause.
            subscription.FailingSince = null;
            subscription.Health = EndpointHealth.Healthy;
        }
        // The owner's word holds even when it repeats the current state (off stays off for the key); a key's switch is the key's.
        if (isActive is not null && (access.ApiKeyId is null || deactivated || reactivated))
        {
            subscription.SwitchedByOwner = access.ApiKeyId is null;
        }
        subscription.UpdatedAt = now;
        var keepsOff = access.ApiKeyId is null && isActive == false && !deactivated;
        // On a conflict (a key switched it on after the read above) the caller reads it again, to switch it off as from on (its queue pauses again).
        return await SaveAsync(access, subscription, deactivated, reactivated, now, ct, keepsOff) switch
        {
            null => WebhookOutcome<WebhookDto>.Ok(ToDto(subscription)),
            WebhookFailure.KeyInvalid => WebhookOutcome<WebhookDto>.Fail(WebhookFailure.KeyInvalid, KeyInvalid),
            WebhookFailure.Conflict => WebhookOutcome<WebhookDto>.Fail(WebhookFailure.Conflict, KeptChanging),
            var failure => WebhookOutcome<WebhookDto>.Fail(failure.Value, SwitchedOffByOwner),
        };
    }

    /// <summary>
    /// Stops deliveries to the subscription, keeping it and its log (idempotent). The owner's disable holds against the
    /// key that created it, even on a webhook already off. <see cref="WebhookFailure.Conflict"/> when a key switched the
    /// webhook on again after each of a few reads (<see cref="ErrorHandling.ConflictTries"/>).
    /// </summary>
    public Task<WebhookOutcome<WebhookDto>> DeactivateAsync(WebhookAccess access, Guid id, CancellationToken ct) =>
        RetryConflictsAsync(() => TryDeactivateAsync(access, id, ct));

    /// <summary>One read and write of <see cref="DeactivateAsync"/>; <see cref="WebhookFailure.Conflict"/> when a key switched the webhook on after the read.</summary>
    private async Task<WebhookOutcome<WebhookDto>> TryDeactivateAsync(WebhookAccess access, Guid id, CancellationToken ct)
    {
        if (await FindAsync(access, id, ct, tracking: true) is not { } subscription)
        {
            return WebhookOutcome<WebhookDto>.Fail(WebhookFailure.NotFound, WebhookNotFound);
        }
        if (subscription.IsActive)
        {
            var now = clock.GetUtcNow().UtcDateTime;
            subscription.IsActive = false;
            subscription.DisabledReason = null;
            subscription.DisabledAt = now;
            subscription.UpdatedAt = now;
            subscription.SwitchedByOwner = access.ApiKeyId is null;
            // Disabling always works, even for a key revoked since it authenticated: it only stops deliveries.
            await SaveAsync(WebhookAccess.Owner(subscription.GymId), subscription, deactivated: true, reactivated: false, now, ct);
        }
        else if (access.ApiKeyId is null && !subscription.SwitchedByOwner)
        {
            var now = clock.GetUtcNow().UtcDateTime;
            subscription.SwitchedByOwner = true;
            subscription.UpdatedAt = now;
            if (await SaveAsync(access, subscription, deactivated: false, reactivated: false, now, ct, keepsOff: true) == WebhookFailure.Conflict)
            {
                // A key switched it on after the read above: the caller reads it again, to switch it off as from on.
                return WebhookOutcome<WebhookDto>.Fail(WebhookFailure.Conflict, KeptChanging);
            }
        }
        return WebhookOutcome<WebhookDto>.Ok(ToDto(subscription));
    }

    /// <summary>
    /// Saves the subscription. When the owner just deactivated it, its queued deliveries pause with it, in one
    /// transaction (<see cref="IDeliveryQueue.HoldAsync"/>); reactivating makes them due at once. (Gymwire's own deactivations, after a 410 or days
    /// of failures, and a revoked key's, end the queue instead: see <see cref="DeliveryRows.DropQueuedAsync"/>.)
    /// A change made with an API key is saved only if the key is still valid at <paramref name="now"/> (see
    /// <see cref="KeyStillValidAsync"/>; <see cref="WebhookFailure.KeyInvalid"/> otherwise), and a key's switch-on only
    /// if the owner has not switched the webhook off meanwhile (<see cref="WebhookFailure.Forbidden"/> otherwise). The
    /// owner's switch-off of a webhook read as off (<paramref name="keepsOff"/>) is saved only if it is still off
    /// (<see cref="WebhookFailure.Conflict"/> otherwise, for the caller to switch it off afresh). Null when it was saved;
    /// nothing is saved otherwise.
    /// </summary>
    private async Task<WebhookFailure?> SaveAsync(WebhookAccess access, WebhookSubscription subscription, bool deactivated, bool reactivated, DateTime now,
        CancellationToken ct, bool keepsOff = false)
    {
        if (access.ApiKeyId is null && !deactivated && !reactivated && !keepsOff)
        {
            await db.SaveChangesAsync(ct);
            return null;
        }
        var (keyValid, changed) = await WriteIfKeyValidAsync(access, now, async () =>
        {
            if ((access.ApiKeyId is not null && reactivated && !await StoredStillAsync(subscription.Id, s => s.IsActive || !s.SwitchedByOwner, ct))
                || (keepsOff && !await StoredStillAsync(subscription.Id, s => !s.IsActive, ct)))
            {
                return (int?)null;
            }
            await db.SaveChangesAsync(ct);
            return deactivated ? await queue.HoldAsync(db, subscription.GymId, subscription.Id, ct)
                : reactivated ? await queue.ResumeAsync(db, subscription.GymId, subscription.Id, ct)
                : 0;
        }, ct);
        if (!keyValid)
        {
            return WebhookFailure.KeyInvalid;
        }
        if (changed is null)
        {
            db.ChangeTracker.Clear();
            return keepsOff ? WebhookFailure.Conflict : WebhookFailure.Forbidden;
        }
        if (reactivated && changed > 0)
        {
            signal.Notify();
        }
        return null;
    }

    /// <summary>
    /// In the caller's transaction: whether the subscription, as stored now, still meets <paramref name="condition"/>
    /// (not switched off by the owner, for a key's switch-on; still off, for the owner's switch-off of one read as off).
    /// The no-op write locks its row on PostgreSQL (waiting for, then re-reading, a switch being saved), so no switch
    /// can land between this check and the caller's write.
    /// </summary>
    private async Task<bool> StoredStillAsync(Guid id, Expression<Func<WebhookSubscription, bool>> condition, CancellationToken ct) =>
        await db.WebhookSubscriptions.Where(s => s.Id == id).Where(condition)
            .ExecuteUpdateAsync(u => u.SetProperty(s => s.UpdatedAt, s => s.UpdatedAt), ct) == 1;

    /// <summary>
    /// Runs <paramref name="write"/> in a write transaction (on SQLite after the write lock) that first checks the
    /// request's API key with <see cref="KeyStillValidAsync"/>: when the key is no longer valid nothing is written, and
    /// the result is false with the default value.
    /// </summary>
    private async Task<(bool KeyValid, T Value)> WriteIfKeyValidAsync<T>(WebhookAccess access, DateTime now, Func<Task<T>> write, CancellationToken ct)
    {
        using (await gate.EnterAsync(db, ct))
        {
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            if (!await KeyStillValidAsync(access, now, ct))
            {
                await tx.RollbackAsync(ct);
                db.ChangeTracker.Clear();
                return (false, default!);
            }
            var value = await write();
            await tx.CommitAsync(ct);
            return (true, value);
        }
    }

    /// <summary>
    /// In the caller's transaction: whether the request's API key (if any) is still unrevoked and unexpired at <paramref name="now"/>,
    /// so no webhook outlives a revocation or expiry that revoking or the sweep would miss. The no-op write of the key's row
    /// serialises with a revocation on PostgreSQL; the same <c>now</c> as <c>UpdatedAt</c> keeps key changes before expiry.
    /// </summary>
    private async Task<bool> KeyStillValidAsync(WebhookAccess access, DateTime now, CancellationToken ct) =>
        access.ApiKeyId is not { } keyId
        || await db.ApiKeys.Where(k => k.Id == keyId && k.GymId == access.GymId && k.RevokedAt == null && (k.ExpiresAt == null || k.ExpiresAt > now))
            .ExecuteUpdateAsync(u => u.SetProperty(k => k.LastUsedAt, k => k.LastUsedAt), ct) == 1;

    /// <summary>
    /// Deletes the subscription with its deliveries and attempts (the database cascades). Refused while a
    /// delivery of it is being attempted, so that its log is not deleted under an attempt the owner may want to see
    /// (an attempt whose delivery is gone all the same is dropped by the recorder). Its queued deliveries (paused ones
    /// included) end unsent with it, and are counted as undeliverable.
    /// </summary>
    public async Task<WebhookOutcome<WebhookDto>> DeleteAsync(WebhookAccess access, Guid id, CancellationToken ct)
    {
        if (await FindAsync(access, id, ct, tracking: true) is not { } subscription)
        {
            return WebhookOutcome<WebhookDto>.Fail(WebhookFailure.NotFound, WebhookNotFound);
        }
        var now = clock.GetUtcNow().UtcDateTime;
        if (await db.WebhookDeliveries.AnyAsync(d => d.GymId == subscription.GymId && d.SubscriptionId == id && d.LockedUntil > now, ct))
        {
            return WebhookOutcome<WebhookDto>.Fail(WebhookFailure.Conflict, "A delivery to this webhook is being attempted right now; try again in a moment");
        }
        var queued = await db.WebhookDeliveries.CountAsync(d => d.GymId == subscription.GymId && d.SubscriptionId == id
            && (d.Status == DeliveryStatus.Pending || d.Status == DeliveryStatus.Retrying), ct);
        db.WebhookSubscriptions.Remove(subscription);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (Exception e) when (ErrorHandling.IsConcurrencyConflict(e))
        {
            // The cascade met a writer holding the same deliveries in another order (retention, say), and PostgreSQL
            // rolled the delete back: nothing is deleted, and trying again works. (EF Core's execution strategy wraps
            // the DbUpdateException, hence the check of the whole exception chain.)
            db.ChangeTracker.Clear();
            return WebhookOutcome<WebhookDto>.Fail(WebhookFailure.Conflict, "Deliveries to this webhook changed while it was being deleted; try again in a moment");
        }
        metrics.RecordUndeliverable(queued);
        return WebhookOutcome<WebhookDto>.Ok(ToDto(subscription));
    }

    /// <summary>A new secret; the previous one keeps signing for <see cref="WebhookOptions.SecretRotationOverlap"/>.</summary>
    public async Task<WebhookOutcome<RotatedSecret>> RotateSecretAsync(WebhookAccess access, Guid id, CancellationToken ct)
    {
        // Each rotation replaces the secret it read, or reads again: of two at once (two tabs), the second then rotates
        // from the first's secret, so both secrets shown still sign. A plain save would let the second overwrite the
        // first's, and the first tab would show a secret that never signs.
        for (var tries = 1; ; tries++)
        {
            if (await FindAsync(access, id, ct) is not { } subscription)
            {
                return WebhookOutcome<RotatedSecret>.Fail(WebhookFailure.NotFound, WebhookNotFound);
            }
            var now = clock.GetUtcNow().UtcDateTime;
            var overlap = options.Value.SecretRotationOverlap;
            var secret = WebhookSigner.NewSecret();
            var read = subscription.SecretProtected;
            var previous = overlap > TimeSpan.Zero ? read : null;
            DateTime? previousExpiresAt = overlap > TimeSpan.Zero ? now + overlap : null;
            var rotated = protector.Protect(secret);
            var (keyValid, updated) = await WriteIfKeyValidAsync(access, now, () =>
                db.WebhookSubscriptions.Where(s => s.Id == subscription.Id && s.SecretProtected == read)
                    .ExecuteUpdateAsync(u => u.SetProperty(s => s.SecretProtected, rotated).SetProperty(s => s.PreviousSecretProtected, previous)
                        .SetProperty(s => s.PreviousSecretExpiresAt, previousExpiresAt).SetProperty(s => s.UpdatedAt, now), ct), ct);
            if (!keyValid)
            {
                return WebhookOutcome<RotatedSecret>.Fail(WebhookFailure.KeyInvalid, KeyInvalid);
            }
            if (updated == 1)
            {
                return WebhookOutcome<RotatedSecret>.Ok(new RotatedSecret(subscription.Id, secret, previousExpiresAt));
            }
            if (tries == ErrorHandling.ConflictTries)
            {
                throw new DbUpdateConcurrencyException("The webhook's secret kept changing while it was being rotated");
            }
        }
    }

    /// <summary>Sends a sample of <paramref name="eventName"/> (default: the first subscribed event) at once and returns the recorded attempt.</summary>
    public async Task<WebhookOutcome<DeliveryDetail>> SendTestAsync(WebhookAccess access, Guid id, string? eventName, CancellationToken ct)
    {
        if (await FindAsync(access, id, ct) is not { } subscription)
        {
            return WebhookOutcome<DeliveryDetail>.Fail(WebhookFailure.NotFound, WebhookNotFound);
        }
        var name = eventName ?? subscription.Events.FirstOrDefault() ?? EventCatalog.MemberJoined;
        if (!EventCatalog.ByName.TryGetValue(name, out var type))
        {
            return WebhookOutcome<DeliveryDetail>.Fail(WebhookFailure.BadRequest, UnknownEvents([name]));
        }
        if (!subscription.IsActive)
        {
            return WebhookOutcome<DeliveryDetail>.Fail(WebhookFailure.Conflict, "This webhook is inactive; activate it before sending a test");
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var delivery = new WebhookDelivery
        {
            Id = Guid.CreateVersion7(now),
            GymId = subscription.GymId,
            SubscriptionId = subscription.Id,
            Event = type.Name,
            Payload = WebhookPayloads.TestSample(type, Guid.CreateVersion7(now), subscription.GymId, now),
            IsTest = true,
            Status = DeliveryStatus.Pending,
            CreatedAt = now,
        };
        db.WebhookDeliveries.Add(delivery);
        if (!(await WriteIfKeyValidAsync(access, now, () => db.SaveChangesAsync(ct), ct)).KeyValid)
        {
            return WebhookOutcome<DeliveryDetail>.Fail(WebhookFailure.KeyInvalid, KeyInvalid);
        }
        metrics.RecordDeliveriesCreated(1, DeliveryMetrics.Triggers.Test);
        // Sent inline, so the owner sees the receiver's answer at once; bounded by Webhooks:Timeout.
        if (await queue.ReadUnfinishedAsync(delivery.Id, CancellationToken.None) is { } unsent)
        {
            await recorder.RecordAsync(await attempt.SendAsync(unsent, CancellationToken.None));
        }
        return WebhookOutcome<DeliveryDetail>.Ok((await LoadDetailAsync(access, subscription.Id, delivery.Id, CancellationToken.None))!);
    }

    /// <summary>A page of the subscription's deliveries, newest first; null when the gym has no such webhook.</summary>
    public async Task<List<DeliveryDto>?> DeliveriesAsync(WebhookAccess access, Guid id, string? status, int offset, int limit, CancellationToken ct)
    {
        if (await FindAsync(access, id, ct) is not { } subscription)
        {
            return null;
        }
        var query = db.WebhookDeliveries.AsNoTracking().Where(d => d.GymId == subscription.GymId && d.SubscriptionId == subscription.Id);
        if (status is not null)
        {
            query = query.Where(d => d.Status == status);
        }
        var rows = await query.OrderByDescending(d => d.CreatedAt).ThenByDescending(d => d.Id)
            .Skip(offset).Take(limit).ToListAsync(ct);
        return rows.Select(ToDto).ToList();
    }

    /// <summary>Starts a fresh round of attempts for a delivery (the whole retry schedule again, under the same webhook-id).</summary>
    public async Task<WebhookOutcome<DeliveryDto>> RedeliverAsync(WebhookAccess access, Guid id, Guid deliveryId, CancellationToken ct)
    {
        if (await FindAsync(access, id, ct) is not { } subscription)
        {
            return WebhookOutcome<DeliveryDto>.Fail(WebhookFailure.NotFound, WebhookNotFound);
        }
        var delivery = await db.WebhookDeliveries.AsNoTracking().FirstOrDefaultAsync(d => d.GymId == subscription.GymId && d.SubscriptionId == id && d.Id == deliveryId, ct);
        if (delivery is null)
        {
            return WebhookOutcome<DeliveryDto>.Fail(WebhookFailure.NotFound, DeliveryNotFound);
        }
        if (!subscription.IsActive)
        {
            return WebhookOutcome<DeliveryDto>.Fail(WebhookFailure.Conflict, "This webhook is inactive; activate it before redelivering");
        }
        var now = clock.GetUtcNow().UtcDateTime;
        // A fresh round under the same webhook-id, so receivers can dedupe; none while a worker attempts it.
        var (keyValid, queued) = await WriteIfKeyValidAsync(access, now, () => queue.RedeliverAsync(db, subscription.GymId, id, deliveryId,
            DateTime.MinValue, DeliveryStatus.All, WebhookSubscription.FirstDueAt(subscription.PausedUntil, now), ct), ct);
        if (!keyValid)
        {
            return WebhookOutcome<DeliveryDto>.Fail(WebhookFailure.KeyInvalid, KeyInvalid);
        }
        if (queued == 0)
        {
            return WebhookOutcome<DeliveryDto>.Fail(WebhookFailure.Conflict, "This delivery is being attempted right now");
        }
        metrics.RecordDeliveriesCreated(1, DeliveryMetrics.Triggers.Redeliver);
        signal.Notify();
        var redelivered = await db.WebhookDeliveries.AsNoTracking().FirstAsync(d => d.GymId == subscription.GymId && d.Id == deliveryId, ct);
        return WebhookOutcome<DeliveryDto>.Ok(ToDto(redelivered));
    }

    /// <summary>
    /// Recovery after an outage: every failed delivery of the webhook (undeliverable, or waiting for a retry) created at
    /// or after <paramref name="since"/> gets a fresh round of attempts now, as <see cref="RedeliverAsync"/> gives one.
    /// One statement, so it holds however many there are; deliveries claimed by a worker right now are left alone.
    /// </summary>
    public async Task<WebhookOutcome<RetryFailedResult>> RetryFailedAsync(WebhookAccess access, Guid id, DateTime? since, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        if (since is not { } from)
        {
            return WebhookOutcome<RetryFailedResult>.Fail(WebhookFailure.BadRequest, "'since' is required: an ISO-8601 time, e.g. 2026-05-01T00:00:00Z");
        }
        from = from.Kind == DateTimeKind.Local ? from.ToUniversalTime() : DateTime.SpecifyKind(from, DateTimeKind.Utc);
        if (from > now)
        {
            return WebhookOutcome<RetryFailedResult>.Fail(WebhookFailure.BadRequest, "'since' must not be in the future");
        }
        if (await FindAsync(access, id, ct) is not { } subscription)
        {
            return WebhookOutcome<RetryFailedResult>.Fail(WebhookFailure.NotFound, WebhookNotFound);
        }
        if (!subscription.IsActive)
        {
            return WebhookOutcome<RetryFailedResult>.Fail(WebhookFailure.Conflict, "This webhook is inactive; activate it before retrying its failed deliveries");
        }
        var due = WebhookSubscription.FirstDueAt(subscription.PausedUntil, now);
        var (keyValid, retried) = await WriteIfKeyValidAsync(access, now, () => queue.RedeliverAsync(db, subscription.GymId, subscription.Id,
            deliveryId: null, from, [DeliveryStatus.Undeliverable, DeliveryStatus.Retrying], due, ct), ct);
        if (!keyValid)
        {
            return WebhookOutcome<RetryFailedResult>.Fail(WebhookFailure.KeyInvalid, KeyInvalid);
        }
        if (retried > 0)
        {
            metrics.RecordDeliveriesCreated(retried, DeliveryMetrics.Triggers.Redeliver);
            signal.Notify();
        }
        return WebhookOutcome<RetryFailedResult>.Ok(new RetryFailedResult(retried, from));
    }

    /// <summary>A delivery with its payload and attempts (the receiver's answers); null when the caller may not see its webhook.</summary>
    public async Task<DeliveryDetail?> LoadDetailAsync(WebhookAccess access, Guid subscriptionId, Guid deliveryId, CancellationToken ct)
    {
        if (await FindAsync(access, subscriptionId, ct) is null)
        {
            return null;
        }
        var gymId = access.GymId;
        // The delivery with its body (stored, or built from its outbox event, read in the same query).
        var found = await (
            from x in db.WebhookDeliveries.AsNoTracking()
            where x.GymId == gymId && x.SubscriptionId == subscriptionId && x.Id == deliveryId
            from e in db.OutboxEvents.Where(e => e.Id == x.EventId && e.GymId == x.GymId).DefaultIfEmpty()
            select new { Delivery = x, Body = WebhookPayloads.For(x.Payload, x.EventId, x.Event, x.GymId, e == null ? null : e.Data, e == null ? null : e.OccurredAt) })
            .FirstOrDefaultAsync(ct);
        if (found is not { Delivery: var d })
        {
            return null;
        }
        var attempts = await db.WebhookAttempts.AsNoTracking().Where(a => a.GymId == gymId && a.DeliveryId == deliveryId)
            .OrderBy(a => a.Number).ToListAsync(ct);
        using var payload = JsonDocument.Parse(found.Body ?? "null");
        return new DeliveryDetail(d.Id, d.SubscriptionId, d.EventId, d.Event, d.Status, d.IsTest, d.AttemptCount, d.CreatedAt,
            d.LastAttemptAt, d.LastStatusCode, d.LastError, d.NextAttemptAt, payload.RootElement.Clone(),
            attempts.Select(ToDto).ToList());
    }

    /// <summary>The latest attempt of each of the given deliveries of a webhook the caller may see (none otherwise).</summary>
    public async Task<Dictionary<Guid, AttemptDto>> LatestAttemptsAsync(WebhookAccess access, Guid subscriptionId, IReadOnlyCollection<Guid> deliveryIds, CancellationToken ct)
    {
        if (await FindAsync(access, subscriptionId, ct) is null)
        {
            return [];
        }
        var gymId = access.GymId;
        var attempts = await (
            from a in db.WebhookAttempts.AsNoTracking()
            where a.GymId == gymId && deliveryIds.Contains(a.DeliveryId)
            join d in db.WebhookDeliveries on a.DeliveryId equals d.Id
            where d.SubscriptionId == subscriptionId
            select a).ToListAsync(ct);
        return attempts.GroupBy(a => a.DeliveryId).ToDictionary(g => g.Key, g => ToDto(g.MaxBy(a => a.Number)!));
    }

    internal static WebhookDto ToDto(WebhookSubscription s) =>
        new(s.Id, s.Url, s.Events, s.IsActive, s.CreatedAt, s.DisabledReason, s.DisabledAt, s.ApiKeyId, s.Description, s.SwitchedOffByOwner);

    internal static DeliveryDto ToDto(WebhookDelivery d) => new(d.Id, d.SubscriptionId, d.EventId, d.Event, d.Status, d.IsTest, d.AttemptCount,
        d.CreatedAt, d.LastAttemptAt, d.LastStatusCode, d.LastError, d.NextAttemptAt);

    private static AttemptDto ToDto(WebhookAttempt a) => new(a.Id, a.Number, a.AttemptedAt, a.Trigger, a.StatusCode, a.DurationMs, a.Error,
        a.ResponseHeaders is null ? null : JsonSerializer.Deserialize<Dictionary<string, string>>(a.ResponseHeaders),
        a.ResponseBody, a.ResponseBodyTruncated);

    /// <summary>The API's refusal of an http:// URL on a server that accepts only https:// (the dashboard words it for owners).</summary>
    internal const string HttpNotAllowed = "'url' must use https:// (plain http is allowed only when Webhooks:AllowHttp is true)";

    /// <summary>
    /// Checks a subscription's URL and normalises it to what delivery will use (null when it is fine): trimmed, and a
    /// non-ASCII host in its IDNA form, as <see cref="Uri.IdnHost"/> gives it to the connection (<c>127。0。0。1</c>,
    /// with ideographic full stops, is <c>127.0.0.1</c>), so the egress check sees the host that would be reached.
    /// </summary>
    internal static string? ValidateUrl(ref string? url, WebhookOptions options, EgressGuard guard)
    {
        if (string.IsNullOrWhiteSpace(url))
        {
            return "'url' is required";
        }
        url = url.Trim();
        if (url.Length > 2048)
        {
            return "'url' must be at most 2048 characters";
        }
        if (url.Any(c => c <= ' ' || c == '\u007F'))
        {
            // Uri would quietly escape a raw line break or space; a URL never contains one (RFC 3986).
            return "'url' must not contain spaces or control characters (escape them, e.g. %20)";
        }
        var absolute = options.AllowHttp ? "'url' must be an absolute https:// or http:// URL" : "'url' must be an absolute https:// URL";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp) || uri.Host.Length == 0)
        {
            return absolute;
        }
        if (uri.HostNameType == UriHostNameType.Dns && !string.Equals(uri.Host, uri.IdnHost, StringComparison.OrdinalIgnoreCase))
        {
            url = new UriBuilder(uri) { Host = uri.IdnHost }.Uri.AbsoluteUri;
            if (!Uri.TryCreate(url, UriKind.Absolute, out uri) || url.Length > 2048)
            {
                return absolute;
            }
        }
        if (uri.Scheme == Uri.UriSchemeHttp && !options.AllowHttp)
        {
            return HttpNotAllowed;
        }
        if (uri.UserInfo.Length > 0)
        {
            return "'url' must not contain a user name or password";
        }
        // The operator's setting is named, so whoever tries a receiver on their own machine knows what to change.
        return guard.CheckHost(uri) is { } reason
            ? $"'url' points to a forbidden address: {reason} (an operator can allow a network with Webhooks:AllowedNetworks, e.g. 127.0.0.0/8 for a receiver on this machine)"
            : null;
    }

    /// <summary>Trims the description; an empty one becomes null (none). Null when it is fine.</summary>
    internal static string? ValidateDescription(ref string? description)
    {
        description = description?.Trim();
        if (string.IsNullOrEmpty(description))
        {
            description = null;
            return null;
        }
        if (description.Length > MaxDescription)
        {
            return $"'description' must be at most {MaxDescription} characters";
        }
        return description.Any(char.IsControl) ? "'description' must not contain control characters (line breaks included)" : null;
    }

    private static string? ValidateEvents(List<string>? requested, out List<string> events)
    {
        events = requested?.Distinct(StringComparer.Ordinal).ToList() ?? [];
        if (events.Count > MaxEvents)
        {
            return $"'events' may name at most {MaxEvents} event types";
        }
        var unknown = events.Where(e => e is null || !EventCatalog.IsKnown(e)).ToList();
        return unknown.Count > 0 ? UnknownEvents(unknown) : null;
    }

    private static string UnknownEvents(IEnumerable<string?> unknown) =>
        $"Unknown event type(s): {string.Join(", ", unknown.Select(u => $"'{u}'"))}. Valid types: {string.Join(", ", EventCatalog.All.Select(e => e.Name))}";
}

/// <summary>What revoking an API key, its expiry, or its lack of the <c>read</c> scope does to the webhook subscriptions that key created.</summary>
public static class WebhookKeyRevocation
{
    /// <summary>
    /// Deactivates the active subscriptions the key created, with the reason the owner sees, and ends their queued
    /// deliveries: a revoked integration's endpoint gets nothing more. Runs inside the revoking transaction; returns the
    /// subscriptions it deactivated and how many deliveries it ended (undeliverable), for the caller to count once the
    /// transaction commits.
    /// </summary>
    public static Task<KeyWebhooksDeactivated> DeactivateOwnedAsync(GymwireDbContext db, Guid gymId, Guid keyId, string keyName, string keyPrefix, DateTime now,
        CancellationToken ct) =>
        DeactivateAsync(db, db.WebhookSubscriptions.Where(s => s.GymId == gymId && s.ApiKeyId == keyId && s.IsActive),
            $"The API key '{keyName}' ({keyPrefix}…) that created this webhook was revoked", now, ct);

    /// <summary>
    /// As <see cref="DeactivateOwnedAsync"/>, for a key past its expiry: only the subscriptions last changed before it
    /// expired (the key can change nothing from then on, so a later change, such as the owner switching it back on, is
    /// the owner's, and the subscription the owner's now).
    /// </summary>
    public static Task<KeyWebhooksDeactivated> DeactivateExpiredAsync(GymwireDbContext db, Guid gymId, Guid keyId, string keyName, string keyPrefix, DateTime expiredAt,
        DateTime now, CancellationToken ct) =>
        DeactivateAsync(db, db.WebhookSubscriptions.Where(s => s.GymId == gymId && s.ApiKeyId == keyId && s.IsActive && s.UpdatedAt < expiredAt),
            $"The API key '{keyName}' ({keyPrefix}…) that created this webhook expired", now, ct);

    /// <summary>
    /// As <see cref="DeactivateOwnedAsync"/>, for a key without the <c>read</c> scope (webhooks made before managing them
    /// needed it): a webhook would give the key the events it may not read. Leaves those the owner switched on since.
    /// </summary>
    public static Task<KeyWebhooksDeactivated> DeactivateUnreadableAsync(GymwireDbContext db, Guid gymId, Guid keyId, string keyName, string keyPrefix, DateTime now,
        CancellationToken ct) =>
        DeactivateAsync(db, db.WebhookSubscriptions.Where(s => s.GymId == gymId && s.ApiKeyId == keyId && s.IsActive && !s.SwitchedByOwner),
            $"The API key '{keyName}' ({keyPrefix}…) that created this webhook lacks the 'read' scope, which a key's webhooks need: " +
            "through this webhook it would receive the events it may not read", now, ct);

    private static async Task<KeyWebhooksDeactivated> DeactivateAsync(GymwireDbContext db, IQueryable<WebhookSubscription> subscriptions, string reason, DateTime now,
        CancellationToken ct)
    {
        reason = ColumnText.Fit(reason, 500);
        var deactivated = new List<WebhookSubscription>();
        foreach (var subscription in await subscriptions.AsNoTracking().ToListAsync(ct))
        {
            // Each under the query's own condition (still active, …), checked again at the write: of two deactivations at
            // once (two nodes' sweeps, or a sweep and the owner's revocation) only one changes a webhook, and tells its owner.
            var changed = await subscriptions.Where(s => s.Id == subscription.Id).ExecuteUpdateAsync(u => u
                .SetProperty(s => s.IsActive, false).SetProperty(s => s.DisabledReason, reason).SetProperty(s => s.DisabledAt, now)
                .SetProperty(s => s.FailingSince, (DateTime?)null).SetProperty(s => s.UpdatedAt, now).SetProperty(s => s.SwitchedByOwner, false), ct);
            if (changed == 1)
            {
                (subscription.IsActive, subscription.DisabledReason, subscription.DisabledAt, subscription.FailingSince, subscription.UpdatedAt, subscription.SwitchedByOwner) =
                    (false, reason, now, null, now, false);
                deactivated.Add(subscription);
            }
        }
        if (deactivated.Count == 0)
        {
            return new KeyWebhooksDeactivated([], 0);
        }
        return new KeyWebhooksDeactivated(deactivated, await DeliveryRows.DropQueuedAsync(db, deactivated.Select(s => s.Id).ToList(), now, ct));
    }
}

/// <summary>The subscriptions a key's revocation, expiry or lack of <c>read</c> deactivated, and how many queued deliveries that ended.</summary>
public sealed record KeyWebhooksDeactivated(IReadOnlyList<WebhookSubscription> Webhooks, int Ended);
