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
                s.Id, s.Url, s.Description, s.IsActive, s.DisabledReason, s.FailingSince, s.CreatedAt,
                Used = s.ApiKeyId != null || db.WebhookDeliveries.Any(d => d.GymId == gymId && d.SubscriptionId == s.Id && !d.IsTest
                    && d.Status == DeliveryStatus.Delivered && d.CreatedAt >= recent),
            })
            .ToListAsync(ct);
        var active = hooks.Count(h => h.IsActive && h.Used);
        var troubled = hooks
            .Where(h => (!h.IsActive && h.DisabledReason is not null) || WebhookStates.Of(h.IsActive, h.FailingSince) == WebhookState.Failing)
            .ToList();
        var problems = new List<string>();
        var links = new List<StatusLink>();
        var zone = troubled.Count == 0 ? null : await Gyms.GymTimeZones.OfGymAsync(db, gymId, ct);
        // Each webhook by where it delivers (host and path; a query may hold a token), and by when it was added where
        // another of the gym's webhooks, troubled or healthy, goes to the same URL: a failing webhook is told apart from
        // a working one on the same host, not listed as if it were that one. Two added to one URL in the same minute are
        // numbered in the order they were added ("1 of 2"), so no two lines are alike.
        var targets = hooks.ToDictionary(h => h.Id, h => Target(h.Url));
        var added = troubled.Count == 0 ? new Dictionary<Guid, string>() : hooks.ToDictionary(h => h.Id, h => Gyms.GymTimeZones.Minutes(h.CreatedAt, zone!));
        foreach (var hook in troubled)
        {
            var target = targets[hook.Id];
            var sameUrl = hooks.Where(h => targets[h.Id] == target).ToList();
            if (sameUrl.Count > 1)
            {
                var sameMinute = sameUrl.Where(h => added[h.Id] == added[hook.Id]).ToList();
                target += sameMinute.Count > 1
                    ? $" (added {added[hook.Id]}, {sameMinute.FindIndex(h => h.Id == hook.Id) + 1} of {sameMinute.Count})"
                    : $" (added {added[hook.Id]})";
            }
            var name = hook.Description ?? target;
            if (hook.Description is not null && hooks.Count(h => h.Description == hook.Description) > 1)
            {
                name += $" ({target})";
            }
            if (!hook.IsActive && hook.DisabledReason is { } reason)
            {
                problems.Add($"The webhook to {target} was disabled by Gymwire: {reason}.");
                links.Add(new StatusLink($"Disabled: {name}", $"/settings/webhooks/{hook.Id}"));
            }
            else
            {
                problems.Add($"Deliveries to {target} have been failing since {Gyms.GymTimeZones.Minutes(hook.FailingSince!.Value, zone!)}.");
                links.Add(new StatusLink($"Failing: {name}", $"/settings/webhooks/{hook.Id}"));
            }
        }
        return new AutomationConnections(active, active == 1 ? "1 webhook in use" : $"{active} webhooks in use",
            problems.Count == 0 ? null : string.Join(" ", problems), links);
    }

    /// <summary>Where a webhook delivers, as the dashboard names it: host and path, never the query (it may hold a token).</summary>
    public static string Target(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) ? uri.Authority + uri.AbsolutePath.TrimEnd('/') : url;
}
