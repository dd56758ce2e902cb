using Gymwire.Data;
using Gymwire.Features.Gyms;
using Gymwire.Features.Webhooks;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Deliveries of a window by their status now.</summary>
public sealed record HealthCounts(int Delivered, int Retrying, int Undeliverable, int Pending)
{
    public int Total => Delivered + Retrying + Undeliverable + Pending;

    /// <summary>Delivered among those attempted at least once (pending ones have no outcome yet); null when none was.</summary>
    public double? SuccessRate => Delivered + Retrying + Undeliverable is var attempted and > 0 ? (double)Delivered / attempted : null;

    public HealthCounts Add(HealthCounts o) => new(Delivered + o.Delivered, Retrying + o.Retrying, Undeliverable + o.Undeliverable, Pending + o.Pending);

    public static readonly HealthCounts None = new(0, 0, 0, 0);

    public static HealthCounts Of(string status, int count) => status switch
    {
        DeliveryStatus.Delivered => new(count, 0, 0, 0),
        DeliveryStatus.Retrying => new(0, count, 0, 0),
        DeliveryStatus.Undeliverable => new(0, 0, count, 0),
        _ => new(0, 0, 0, count),
    };
}

/// <summary>One bar of the chart: the deliveries created in [Start, End) (UTC; a day is the gym's local day).</summary>
public sealed record ChartBar(DateTime Start, DateTime End, HealthCounts Counts);

/// <summary>The health panel's figures: one webhook, or all of a gym's.</summary>
public sealed record WebhookHealth(HealthCounts Day, HealthCounts Week, int? MedianMs, int? P95Ms, int Answered, IReadOnlyList<ChartBar> Hours, IReadOnlyList<ChartBar> Days);

/// <summary>A row of the webhook list.</summary>
public sealed record WebhookListRow(WebhookSubscription Webhook, WebhookState State, LastDelivery? Last, double? DayRate, int DayTotal);

public sealed record LastDelivery(Guid Id, string Status, DateTime At);

/// <summary>
/// The dashboard's delivery health, read from the delivery and attempt rows. Windows are cut by a delivery's creation
/// time: 24 h is the current hour and the 23 before it, 7 days the current day and the 6 before it, hours and days of
/// the gym's time zone (a day where the clocks change has 23 or 25 hours; the bars stay whole local days). Every
/// query walks the (gym_id, subscription_id, created_at, status) index over its window only, without reading the rows, so
/// the cost follows the window's deliveries, not the table's (docs/webhooks.md has the measurement).
/// </summary>
public sealed class WebhookHealthQueries(GymwireDbContext db, TimeProvider clock, GymTime time)
{
    /// <summary>Response times are those of the attempts of at most this many of the last 24 hours' latest deliveries.</summary>
    public const int LatencySample = 10_000;

    public DateTime Now { get; } = clock.GetUtcNow().UtcDateTime;

    // The start of the current local hour (a zone may be a half or quarter hour off UTC), then 23 real hours back.
    private DateTime HourStart
    {
        get
        {
            var local = time.Local(Now);
            var offset = local - Now;
            return new DateTime(local.Year, local.Month, local.Day, local.Hour, 0, 0, DateTimeKind.Utc).Add(-offset).AddHours(-23);
        }
    }

    /// <summary>The gym's last 7 local days (today last), as UTC bounds.</summary>
    private IEnumerable<(DateTime Start, DateTime End)> Days()
    {
        var today = time.Today(clock);
        for (var i = -6; i <= 0; i++)
        {
            yield return (GymTimeZones.StartOfDayUtc(today.AddDays(i), time.Zone), GymTimeZones.StartOfDayUtc(today.AddDays(i + 1), time.Zone));
        }
    }

    /// <summary>The health of the gym's given webhooks, together.</summary>
    public async Task<WebhookHealth> HealthAsync(Guid gymId, IReadOnlyCollection<Guid> subscriptionIds, CancellationToken ct)
    {
        var deliveries = Deliveries(gymId, subscriptionIds);
        var hourStart = HourStart;
        // One count per bar, each a range of the (gym_id, subscription_id, created_at, status) index read without the
        // rows. Grouping the window by an hour computed from created_at instead costs a date function and a sort per
        // delivery, about ten times as much.
        var hours = new List<ChartBar>(24);
        for (var i = 0; i < 24; i++)
        {
            var start = hourStart.AddHours(i);
            hours.Add(new ChartBar(start, start.AddHours(1), await CountAsync(deliveries, start, start.AddHours(1), ct)));
        }
        var days = new List<ChartBar>(7);
        foreach (var (start, end) in Days())
        {
            days.Add(new ChartBar(start, end, await CountAsync(deliveries, start, end, ct)));
        }
        // Response times of the last 24 hours' attempts that got an answer: a timeout or refused connection has none.
        // A sample of the latest deliveries at most, so the cost is bounded on a busy webhook; the attempts are looked up
        // by (gym_id, delivery_id) from that list, never by walking the gym's attempts.
        var sample = deliveries.Where(d => d.CreatedAt >= hourStart).OrderByDescending(d => d.CreatedAt).Take(LatencySample).Select(d => d.Id);
        var durations = await db.WebhookAttempts.AsNoTracking()
            .Where(a => a.GymId == gymId && sample.Contains(a.DeliveryId) && a.StatusCode != null)
            .Select(a => a.DurationMs).ToListAsync(ct);
        durations.Sort();
        return new WebhookHealth(
            hours.Aggregate(HealthCounts.None, (s, b) => s.Add(b.Counts)),
            days.Aggregate(HealthCounts.None, (s, b) => s.Add(b.Counts)),
            Percentile(durations, 0.5), Percentile(durations, 0.95), durations.Count, hours, days);
    }

    /// <summary>The webhook list: each subscription with its state, last delivery and 24-hour success rate.</summary>
    public async Task<IReadOnlyList<WebhookListRow>> ListAsync(WebhookAccess access, CancellationToken ct)
    {
        var hooks = await WebhookService.Visible(db.WebhookSubscriptions.AsNoTracking(), access)
            .OrderBy(s => s.CreatedAt).ThenBy(s => s.Id).ToListAsync(ct);
        var hourStart = HourStart;
        var rows = new List<WebhookListRow>(hooks.Count);
        foreach (var hook in hooks)
        {
            // Per webhook, so each is one short walk of the index from its newest entry.
            var last = await Deliveries(access.GymId, [hook.Id]).OrderByDescending(d => d.CreatedAt).ThenByDescending(d => d.Id)
                .Select(d => new LastDelivery(d.Id, d.Status, d.LastAttemptAt ?? d.CreatedAt)).FirstOrDefaultAsync(ct);
            var day = await CountAsync(Deliveries(access.GymId, [hook.Id]), hourStart, hourStart.AddHours(24), ct);
            rows.Add(new WebhookListRow(hook, WebhookStates.Of(hook), last, day.SuccessRate, day.Total));
        }
        return rows;
    }

    /// <summary>The gym's failing webhooks (for the banner on every page): id and URL, oldest first.</summary>
    public static Task<List<(Guid Id, string Url)>> FailingAsync(GymwireDbContext db, Guid gymId, CancellationToken ct) =>
        db.WebhookSubscriptions.AsNoTracking()
            .Where(s => s.GymId == gymId && s.IsActive && s.FailingSince != null)
            .OrderBy(s => s.CreatedAt).ThenBy(s => s.Id)
            .Select(s => new ValueTuple<Guid, string>(s.Id, s.Url))
            .ToListAsync(ct);

    /// <summary>By subscription, never the whole gym at once: the index is (gym_id, subscription_id, created_at).</summary>
    private IQueryable<WebhookDelivery> Deliveries(Guid gymId, IReadOnlyCollection<Guid> subscriptionIds)
    {
        var query = db.WebhookDeliveries.AsNoTracking().Where(d => d.GymId == gymId);
        if (subscriptionIds.Count == 1)
        {
            var id = subscriptionIds.First();
            return query.Where(d => d.SubscriptionId == id);
        }
        return query.Where(d => subscriptionIds.Contains(d.SubscriptionId));
    }

    /// <summary>The deliveries created in [from, to), by status.</summary>
    // Conditional counts in one pass, rather than a GROUP BY status, which sorts the window's entries first.
    private static async Task<HealthCounts> CountAsync(IQueryable<WebhookDelivery> deliveries, DateTime from, DateTime to, CancellationToken ct)
    {
        var c = await deliveries.Where(d => d.CreatedAt >= from && d.CreatedAt < to)
            .GroupBy(d => 1)
            .Select(g => new
            {
                Delivered = g.Count(d => d.Status == DeliveryStatus.Delivered),
                Retrying = g.Count(d => d.Status == DeliveryStatus.Retrying),
                Undeliverable = g.Count(d => d.Status == DeliveryStatus.Undeliverable),
                All = g.Count(),
            })
            .FirstOrDefaultAsync(ct);
        return c is null ? HealthCounts.None : new(c.Delivered, c.Retrying, c.Undeliverable, c.All - c.Delivered - c.Retrying - c.Undeliverable);
    }

    /// <summary>Nearest-rank percentile of sorted values.</summary>
    private static int? Percentile(List<int> sorted, double p) =>
        sorted.Count == 0 ? null : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];
}

/// <param name="Title">The panel's heading.</param>
/// <param name="Id">Unique on the page: the panel's element ids start with it.</param>
public sealed record HealthPanel(WebhookHealth Health, string Title, string Id);
