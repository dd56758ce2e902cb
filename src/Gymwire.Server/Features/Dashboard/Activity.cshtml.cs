using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.AspNetCore.WebUtilities;

namespace Gymwire.Features.Dashboard;

/// <param name="DeliveriesPurged">
/// The event was dispatched longer ago than <c>Webhooks:DeliveryRetention</c>: its deliveries, if it had any, are deleted.
/// </param>
public sealed record ActivityRow(long Sequence, Guid Id, string Type, DateTime OccurredAt, string Summary, IReadOnlyList<EventDelivery> Deliveries,
    bool DeliveriesPurged);

/// <summary>A delivery an event caused, for the link from the event to it.</summary>
public sealed record EventDelivery(Guid SubscriptionId, Guid DeliveryId, string Status, string Endpoint);

/// <summary>The gym's events, latest occurred first, a page at a time (keyset on (occurred_at, sequence), so paging stays cheap).</summary>
public sealed class ActivityModel(GymwireDbContext db, TimeProvider clock, GymTime time, IOptions<WebhookOptions> webhookOptions) : PageModel
{
    public const int PageSize = 25;

    [BindProperty(SupportsGet = true)]
    public long? Before { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? Type { get; set; }

    /// <summary>Only events on or after this day (in the gym's time zone).</summary>
    [BindProperty(SupportsGet = true)]
    public DateOnly? From { get; set; }

    /// <summary>Only events on or before this day (in the gym's time zone).</summary>
    [BindProperty(SupportsGet = true)]
    public DateOnly? To { get; set; }

    public DateTime Now { get; } = clock.GetUtcNow().UtcDateTime;

    /// <summary>How long deliveries are kept (<c>Webhooks:DeliveryRetention</c>); events are kept for good.</summary>
    public TimeSpan DeliveryRetention { get; } = webhookOptions.Value.DeliveryRetention;

    public IReadOnlyList<ActivityRow> Events { get; private set; } = [];

    /// <summary>The <c>before</c> value of the next (older) page, or null on the last page.</summary>
    public long? OlderThan { get; private set; }

    public async Task OnGetAsync(CancellationToken ct)
    {
        var gymId = User.GetGymId();
        var query = db.OutboxEvents.AsNoTracking().Where(e => e.GymId == gymId);
        if (Type is { Length: > 0 } type && EventCatalog.ByName.TryGetValue(type, out var eventType))
        {
            Type = eventType.Canonical;
            query = query.Where(e => e.Type == eventType.Canonical);
        }
        else
        {
            Type = null;
        }
        if (From is { } from)
        {
            var start = Gyms.GymTimeZones.StartOfDayUtc(from, time.Zone);
            query = query.Where(e => e.OccurredAt >= start);
        }
        if (To is { } to)
        {
            var end = to == DateOnly.MaxValue ? DateTime.SpecifyKind(DateTime.MaxValue, DateTimeKind.Utc) : Gyms.GymTimeZones.StartOfDayUtc(to.AddDays(1), time.Zone);
            query = query.Where(e => e.OccurredAt < end);
        }
        // Keyset paging on (occurred_at, sequence): "before" names the last event of the previous page.
        if (Before is { } before)
        {
            var last = await db.OutboxEvents.AsNoTracking().Where(e => e.GymId == gymId && e.Sequence == before).Select(e => (DateTime?)e.OccurredAt).FirstOrDefaultAsync(ct);
            query = last is { } at
                ? query.Where(e => e.OccurredAt < at || (e.OccurredAt == at && e.Sequence < before))
                : query.Where(e => e.Sequence < before);
        }
        // By when the event happened (an event recorded late, e.g. a check-in synced from a door, takes its place in
        // time), the sequence breaking ties.
        var rows = await query.OrderByDescending(e => e.OccurredAt).ThenByDescending(e => e.Sequence).Take(PageSize + 1)
            .Select(e => new { e.Sequence, e.Id, e.Type, e.OccurredAt, e.Data, e.DispatchedAt })
            .ToListAsync(ct);
        var page = rows.Take(PageSize).ToList();
        var names = await EventSummaries.MemberNamesAsync(db, gymId, page.Select(e => e.Data), ct);
        // The deliveries each event caused, through the (gym_id, event_id, subscription_id) index: one lookup per pair.
        var hooks = await db.WebhookSubscriptions.AsNoTracking().Where(s => s.GymId == gymId).Select(s => new { s.Id, s.Url, s.Description }).ToListAsync(ct);
        var hookIds = hooks.Select(h => h.Id).ToList();
        var eventIds = page.Select(e => (Guid?)e.Id).ToList();
        var deliveries = hookIds.Count == 0 || eventIds.Count == 0 ? []
            : await db.WebhookDeliveries.AsNoTracking()
                .Where(d => d.GymId == gymId && hookIds.Contains(d.SubscriptionId) && eventIds.Contains(d.EventId))
                .Select(d => new { d.EventId, d.SubscriptionId, d.Id, d.Status }).ToListAsync(ct);
        var endpoints = hooks.ToDictionary(h => h.Id, h => h.Description ?? (Uri.TryCreate(h.Url, UriKind.Absolute, out var u) ? u.Authority : h.Url));
        var byEvent = deliveries.ToLookup(d => d.EventId);
        // Deliveries are created when the event is dispatched, so one dispatched before the cutoff has had its deleted.
        var purgedBefore = Now - DeliveryRetention;
        Events = page.Select(e => new ActivityRow(e.Sequence, e.Id, e.Type, e.OccurredAt, EventSummaries.Summarize(e.Data, names),
            byEvent[e.Id].Select(d => new EventDelivery(d.SubscriptionId, d.Id, d.Status, endpoints[d.SubscriptionId])).ToList(),
            e.DispatchedAt < purgedBefore)).ToList();
        OlderThan = rows.Count > PageSize ? Events[^1].Sequence : null;
    }

    public string PageUrl(long? before)
    {
        var query = new Dictionary<string, string?>(StringComparer.Ordinal);
        if (Type is not null)
        {
            query["type"] = Type;
        }
        if (From is { } from)
        {
            query["from"] = from.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
        }
        if (To is { } to)
        {
            query["to"] = to.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
        }
        if (before is not null)
        {
            query["before"] = before.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return QueryHelpers.AddQueryString("/activity", query);
    }
}
