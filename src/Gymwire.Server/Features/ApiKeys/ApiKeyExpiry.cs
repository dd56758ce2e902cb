using Gymwire.Features.Email;
using Gymwire.Features.Webhooks;

namespace Gymwire.Features.ApiKeys;

/// <summary>
/// Every <see cref="Interval"/>, deactivates the webhook subscriptions created by API keys past their expiry, as
/// revoking the key does: an expired key gets 401 at once, and its webhooks must not go on receiving the gym's events.
/// It deactivates those created by valid keys without the <c>read</c> scope too (made before managing a webhook needed
/// it; a key's scopes never change), unless the owner switched them on since: such a key gets 403 from the event feed,
/// and must not receive the events through a webhook instead. Every node runs it; a second node finds nothing left to do.
/// The gym's owners are told by email what it switched off and why (the owner did not, unlike a revocation).
/// </summary>
public sealed partial class ApiKeyExpiry(
    IServiceScopeFactory scopes,
    DeliveryMetrics deliveryMetrics,
    OwnerNoticeQueue notices,
    TimeProvider clock,
    ILogger<ApiKeyExpiry> logger) : BackgroundService
{
    /// <summary>How long an expired key's webhooks may still receive events (docs/webhooks.md).</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Interval, clock, stoppingToken);
                await SweepAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogSweepFailed(logger, e);
            }
        }
    }

    /// <summary>
    /// Deactivates what expired keys created and nobody changed since, and what valid keys without <c>read</c> created and
    /// the owner did not switch on; returns how many keys it found so.
    /// </summary>
    public async Task<int> SweepAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var now = clock.GetUtcNow().UtcDateTime;
        var expired = await db.ApiKeys.AsNoTracking()
            .Where(k => k.RevokedAt == null && k.ExpiresAt <= now
                && db.WebhookSubscriptions.Any(s => s.GymId == k.GymId && s.ApiKeyId == k.Id && s.IsActive && s.UpdatedAt < k.ExpiresAt))
            .ToListAsync(ct);
        var unreadable = await db.ApiKeys.AsNoTracking()
            .Where(k => k.RevokedAt == null && (k.ExpiresAt == null || k.ExpiresAt > now) && !k.Scopes.Contains(Scopes.Read)
                && db.WebhookSubscriptions.Any(s => s.GymId == k.GymId && s.ApiKeyId == k.Id && s.IsActive && !s.SwitchedByOwner))
            .ToListAsync(ct);
        async Task<int> DeactivateAsync(ApiKey key, KeyWebhooksNotice.Cause cause, Func<Task<KeyWebhooksDeactivated>> deactivate)
        {
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            var deactivated = await deactivate();
            await transaction.CommitAsync(ct);
            deliveryMetrics.RecordUndeliverable(deactivated.Ended);
            // After the commit, and only for the webhooks this sweep switched off: another node's sweep at the same time
            // finds them off already, so the owner gets one email.
            if (deactivated.Webhooks.Count > 0)
            {
                notices.KeyWebhooksDeactivated(new KeyWebhooksNotice(key.GymId, key.Id, key.Name, key.KeyPrefix, cause,
                    deactivated.Webhooks.Select(w => new KeyWebhooksNotice.Webhook(w.Url, w.Description)).ToList()));
            }
            return deactivated.Ended;
        }
        foreach (var key in expired)
        {
            var ended = await DeactivateAsync(key, KeyWebhooksNotice.Cause.Expired, () =>
                WebhookKeyRevocation.DeactivateExpiredAsync(db, key.GymId, key.Id, key.Name, key.KeyPrefix, key.ExpiresAt!.Value, now, ct));
            LogDeactivated(logger, key.Id, ended);
        }
        foreach (var key in unreadable)
        {
            var ended = await DeactivateAsync(key, KeyWebhooksNotice.Cause.LacksRead, () =>
                WebhookKeyRevocation.DeactivateUnreadableAsync(db, key.GymId, key.Id, key.Name, key.KeyPrefix, now, ct));
            LogDeactivatedWithoutRead(logger, key.Id, ended);
        }
        return expired.Count + unreadable.Count;
    }

    [LoggerMessage(EventId = 2014, Level = LogLevel.Information, Message = "API key {KeyId} expired: the webhook subscriptions it created are deactivated, {Ended} queued deliveries ended")]
    private static partial void LogDeactivated(ILogger logger, Guid keyId, int ended);

    [LoggerMessage(EventId = 2016, Level = LogLevel.Information,
        Message = "API key {KeyId} lacks the read scope: the webhook subscriptions it created are deactivated, {Ended} queued deliveries ended")]
    private static partial void LogDeactivatedWithoutRead(ILogger logger, Guid keyId, int ended);

    [LoggerMessage(EventId = 2015, Level = LogLevel.Warning, Message = "Deactivating the webhooks of expired API keys, or of keys without read, failed; retrying in a minute")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);
}
