using Gymwire.Features.Dashboard.Integrations;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// The gym's webhook subscriptions, for the Zapier/Make tile: active ones connect it; one that Gymwire disabled
/// (410 Gone, or failing too long) or whose deliveries are failing now is a problem the owner should see.
/// </summary>
public sealed class WebhookConnections(GymwireDbContext db, TimeProvider clock) : IAutomationConnectionSource
{
    public async Task<AutomationConnections> GetAsync(Guid gymId, CancellationToken ct)
    {
        // In use: an active subscription that an integration created with its key (Zapier's REST hooks), or one that
        // delivered an event recently; one the owner added that never received anything connects nothing yet.
        var recent = clock.GetUtcNow().UtcDateTime - ApiKeys.ApiKeyConnections.RecentUse;
        var hooks = await db.WebhookSubscriptions.AsNoTracking().Where(s => s.GymId == gymId)
            .OrderBy(s => s.CreatedAt).ThenBy(s => s.Id)
            .Select(s => new
            {
                s.Id, s.Url, s.Description, s.IsActive, s.DisabledReason, s.FailingSince,
                Used = s.ApiKeyId != null || db.WebhookDeliveries.Any(d => d.GymId == gymId && d.SubscriptionId == s.Id && !d.IsTest
                    && d.Status == DeliveryStatus.Delivered && d.CreatedAt >= recent),
            })
            .ToListAsync(ct);
        var active = hooks.Count(h => h.IsActive && h.Used);
        var problems = new List<string>();
        var links = new List<StatusLink>();
        TimeZoneInfo? zone = null;
        foreach (var hook in hooks)
        {
            var host = Uri.TryCreate(hook.Url, UriKind.Absolute, out var uri) ? uri.Authority : hook.Url;
            var name = hook.Description ?? host;
            if (!hook.IsActive && hook.DisabledReason is { } reason)
            {
                problems.Add($"The webhook to {host} was disabled by Gymwire: {reason}.");
                links.Add(new StatusLink($"Disabled: {name}", $"/settings/webhooks/{hook.Id}"));
            }
            else if (WebhookStates.Of(hook.IsActive, hook.FailingSince) == WebhookState.Failing)
            {
                zone ??= await Gyms.GymTimeZones.OfGymAsync(db, gymId, ct);
                problems.Add($"Deliveries to {host} have been failing since {Gyms.GymTimeZones.Minutes(hook.FailingSince!.Value, zone)}.");
                links.Add(new StatusLink($"Failing: {name}", $"/settings/webhooks/{hook.Id}"));
            }
        }
        return new AutomationConnections(active, active == 1 ? "1 webhook in use" : $"{active} webhooks in use",
            problems.Count == 0 ? null : string.Join(" ", problems), links);
    }
}
