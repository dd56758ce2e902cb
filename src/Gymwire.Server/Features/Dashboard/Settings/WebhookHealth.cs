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
/// The dashboard's delivery health. Windows are cut by a delivery's creation time: 24 h is the current hour and the 23
/// before it, 7 days the current day and the 6 before it, hours and days of the gym's time zone (a day where the clocks
/// change has 23 or 25 hours; the bars stay whole local days). The counts come from the quarter-hour roll-up
/// <c>webhook_delivery_counts</c> (<see cref="DeliveryCount"/>), a few hundred rows a week however many deliveries,
/// which leaves test sends out, as the response times do (a test is the receiver's answer to a sample);
/// response times from the attempts of a bounded sample of deliveries (docs/webhooks.md has the measurement).
/// </summary>
public sealed class WebhookHealthQueries(GymwireDbContext db, TimeProvider clock, GymTime time)
{
    /// <summary>Response times are those of the attempts of at most this many of the last 24 hours' latest deliveries.</summary>
    public const int LatencySample = 2_000;

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
        var hourStart = HourStart;
        var days = Days().ToList();
        // The quarter-hour roll-up of the whole span (at most 672 rows per webhook), summed into bars here.
        var buckets = await CountsAsync(gymId, subscriptionIds, Min(hourStart, days[0].Start), Max(hourStart.AddHours(24), days[^1].End), ct);
        HealthCounts Sum(DateTime from, DateTime to) => buckets.Where(b => b.Start >= from && b.Start < to).Aggregate(HealthCounts.None, (s, b) => s.Add(b.Counts));
        var hours = Enumerable.Range(0, 24).Select(i => hourStart.AddHours(i)).Select(start => new ChartBar(start, start.AddHours(1), Sum(start, start.AddHours(1)))).ToList();
        var dayBars = days.Select(d => new ChartBar(d.Start, d.End, Sum(d.Start, d.End))).ToList();
        // Response times of the last 24 hours' attempts that got an answer: a timeout or refused connection has none.
        // A sample of the latest deliveries at most, so the cost is bounded on a busy webhook; the attempts are looked up
        // by (gym_id, delivery_id) from that list, never by walking the gym's attempts.
        var sample = Deliveries(gymId, subscriptionIds).Where(d => d.CreatedAt >= hourStart && !d.IsTest).OrderByDescending(d => d.CreatedAt).Take(LatencySample).Select(d => d.Id);
        var durations = await db.WebhookAttempts.AsNoTracking()
            .Where(a => a.GymId == gymId && sample.Contains(a.DeliveryId) && a.StatusCode != null)
            .Select(a => a.DurationMs).ToListAsync(ct);
        durations.Sort();
        return new WebhookHealth(
            hours.Aggregate(HealthCounts.None, (s, b) => s.Add(b.Counts)),
            dayBars.Aggregate(HealthCounts.None, (s, b) => s.Add(b.Counts)),
            Percentile(durations, 0.5), Percentile(durations, 0.95), durations.Count, hours, dayBars);
    }

    private static DateTime Min(DateTime a, DateTime b) => a < b ? a : b;

    private static DateTime Max(DateTime a, DateTime b) => a > b ? a : b;

    /// <summary>The roll-up's quarter hours in [from, to) of the given webhooks, each summed over webhooks and slots.</summary>
    private async Task<List<(DateTime Start, HealthCounts Counts)>> CountsAsync(Guid gymId, IReadOnlyCollection<Guid> subscriptionIds, DateTime from, DateTime to, CancellationToken ct)
    {
        var rows = db.DeliveryCounts.AsNoTracking().Where(c => c.GymId == gymId && c.Bucket >= from && c.Bucket < to);
        if (subscriptionIds.Count == 1)
        {
            var id = subscriptionIds.First();
            rows = rows.Where(c => c.SubscriptionId == id);
        }
        else
        {
            rows = rows.Where(c => subscriptionIds.Contains(c.SubscriptionId));
        }
        var sums = await rows.GroupBy(c => c.Bucket)
            .Select(g => new { Start = g.Key, Delivered = g.Sum(c => c.Delivered), Retrying = g.Sum(c => c.Retrying), Undeliverable = g.Sum(c => c.Undeliverable), Pending = g.Sum(c => c.Pending) })
            .ToListAsync(ct);
        return sums.Select(s => (DateTime.SpecifyKind(s.Start, DateTimeKind.Utc), new HealthCounts(s.Delivered, s.Retrying, s.Undeliverable, s.Pending))).ToList();
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
            var day = (await CountsAsync(access.GymId, [hook.Id], hourStart, hourStart.AddHours(24), ct)).Aggregate(HealthCounts.None, (s, b) => s.Add(b.Counts));
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

    /// <summary>By subscription, never the whole gym at once: the index is (subscription_id, gym_id, created_at).</summary>
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

    /// <summary>Nearest-rank percentile of sorted values.</summary>
    private static int? Percentile(List<int> sorted, double p) =>
        sorted.Count == 0 ? null : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];
}

/// <param name="Title">The panel's heading.</param>
/// <param name="Id">Unique on the page: the panel's element ids start with it.</param>
public sealed record HealthPanel(WebhookHealth Health, string Title, string Id);
