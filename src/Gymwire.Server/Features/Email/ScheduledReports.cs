using System.Net;
using System.Text;
using Gymwire.Features.Exports;

namespace Gymwire.Features.Email;

/// <summary>The <c>Reports</c> configuration section.</summary>
public sealed class ReportsOptions
{
    public const string Section = "Reports";

    /// <summary>Run the scheduled-report worker on this node.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How often the worker looks for periods that have ended (and retries a failed send).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMinutes(5);
}

/// <summary>Wakes the report worker (tests; a schedule change).</summary>
public sealed class ReportSignal : WakeSignal;

/// <summary>
/// At each period boundary (the gym's midnight, Monday, the 1st, in its time zone, on <see cref="TimeProvider"/>; <see cref="Grace"/> after it), emails
/// each scheduled report's recipients (the gym's owners at the time, other addresses, or both) the exports of the period that ended, in its format. A period is claimed with a conditional update of
/// <see cref="ReportSchedule.ReportedThrough"/> before sending, so two nodes never both send it; any failure after the
/// claim and before the message is accepted (the send, a database error, shutdown) gives it back, and the next pass retries.
/// A claim carries a lease (<see cref="ClaimLease"/>): a node killed between claim and send cannot give the period back,
/// so any node's pass does once the lease has lapsed, and the report is sent then (twice, if the node died in the moment
/// between the mail server's acceptance and its record: a report sent twice beats one never sent). One gym's failure does
/// not stop the others' reports. A server that was down catches up one period per pass.
/// </summary>
public sealed partial class ScheduledReports(
    IServiceScopeFactory scopes, ReportSignal signal, TimeProvider clock, IOptions<ReportsOptions> options, ILogger<ScheduledReports> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.Enabled)
        {
            return;
        }
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunOnceAsync(stoppingToken);
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                LogPassFailed(logger, e);
            }
            using var wake = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            var signalled = signal.WaitAsync(wake.Token);
            var timer = Task.Delay(options.Value.PollInterval, clock, wake.Token);
            await Task.WhenAny(signalled, timer);
            await wake.CancelAsync();
            try
            {
                await Task.WhenAll(signalled, timer);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    /// <summary>How long a claimed period's send may take (building the files and the mail server's answer) before it is given back.</summary>
    internal static readonly TimeSpan ClaimLease = TimeSpan.FromMinutes(15);

    /// <summary>
    /// How long after a period's end its report waits: a payment is stamped when its request starts and committed a
    /// moment later, so one stamped just before midnight may commit after it, and a report sent at once would miss it.
    /// A write waits at most 30 s for the database (SQLite's busy timeout), well inside this.
    /// </summary>
    internal static readonly TimeSpan Grace = TimeSpan.FromMinutes(2);

    internal const string InterruptedError = "The server stopped while sending this report; it was sent again.";

    internal async Task RunOnceAsync(CancellationToken ct)
    {
        List<(ReportSchedule Schedule, string TimeZone)> schedules;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            var lapsedAt = clock.GetUtcNow().UtcDateTime;
            var lapsed = await db.ReportSchedules.Where(s => s.ClaimedFrom != null && s.ClaimedUntil < lapsedAt)
                .ExecuteUpdateAsync(s => s.SetProperty(x => x.ReportedThrough, x => x.ClaimedFrom!.Value)
                    .SetProperty(x => x.ClaimedFrom, (DateTime?)null).SetProperty(x => x.ClaimedUntil, (DateTime?)null)
                    .SetProperty(x => x.LastFailureAt, lapsedAt).SetProperty(x => x.LastFailure, InterruptedError), ct);
            if (lapsed > 0)
            {
                LogClaimsLapsed(logger, lapsed);
            }
            schedules = (await (from s in db.ReportSchedules.AsNoTracking()
                                join g in db.Gyms on s.GymId equals g.Id
                                select new { Schedule = s, g.TimeZone }).ToListAsync(ct))
                .ConvertAll(x => (x.Schedule, x.TimeZone));
        }
        var now = clock.GetUtcNow().UtcDateTime;
        foreach (var (schedule, zone) in schedules.Select(x => (x.Schedule, GymTimeZones.Find(x.TimeZone))))
        {
            var start = schedule.ReportedThrough;
            var end = ReportFrequencies.Next(schedule.Frequency, start, zone);
            if (now >= end + Grace)
            {
                await ReportAsync(schedule, zone, start, end, ct);
            }
        }
    }

    // One gym's report in its own scope, so what one gym's failure leaves behind (a tracked row, a broken
    // connection) cannot reach the next gym's.
    private async Task ReportAsync(ReportSchedule schedule, TimeZoneInfo zone, DateTime start, DateTime end, CancellationToken ct)
    {
        var claimed = false;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            var notifications = scope.ServiceProvider.GetRequiredService<OwnerNotifications>();
            var leaseEnd = clock.GetUtcNow().UtcDateTime + ClaimLease;
            claimed = await db.ReportSchedules
                .Where(s => s.GymId == schedule.GymId && s.ReportedThrough == start && s.Frequency == schedule.Frequency && s.ClaimedFrom == null)
                .ExecuteUpdateAsync(s => s.SetProperty(x => x.ReportedThrough, end).SetProperty(x => x.ClaimedFrom, start)
                    .SetProperty(x => x.ClaimedUntil, leaseEnd), ct) > 0;
            if (!claimed)
            {
                return;
            }
            var range = new ExportRange(GymTimeZones.LocalDate(start, zone), GymTimeZones.LocalDate(end, zone).AddDays(-1), zone);
            var message = await BuildAsync(db, schedule, range, new RecordedPeriod(start, end), ct);
            // The owners as they are now, so one added since the schedule was saved gets the report too.
            var owners = schedule.SendToOwners ? await OwnerNotifications.OwnerAddresses(db, schedule.GymId).ToListAsync(ct) : [];
            var recipients = owners.Concat(ReportRecipients.Split(schedule.Recipients)).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
            var sent = await notifications.SendAsync(schedule.GymId, "report", message with { To = recipients }, ct);
            var at = clock.GetUtcNow().UtcDateTime;
            if (sent)
            {
                // Sent: the period stays claimed whatever happens next (shutdown included), or it would go out twice.
                claimed = false;
                await RecordSentAsync(schedule.GymId, end, at);
            }
            else
            {
                var error = await db.EmailDeliveries.Where(d => d.GymId == schedule.GymId).OrderByDescending(d => d.CreatedAt)
                    .Select(d => d.Error).FirstOrDefaultAsync(ct);
                // Give the period back, so the next pass sends it again.
                await GiveBackAsync(db, schedule.GymId, start, end, error, ct);
                claimed = false;
            }
        }
        catch (Exception e)
        {
            var stopping = e is OperationCanceledException && ct.IsCancellationRequested;
            if (claimed)
            {
                // Whatever went wrong after the claim (a database error, or shutdown in the middle of sending), the
                // period goes back so the next pass sends it; otherwise nothing would ever send it again.
                await GiveBackAfterFailureAsync(schedule.GymId, start, end, stopping ? null : ServerError);
            }
            if (stopping)
            {
                throw;
            }
            LogReportFailed(logger, schedule.GymId, e);
        }
    }

    /// <summary>
    /// Ends the claim of a period the mail server accepted. Tried again (a fresh scope, no cancellation) when the
    /// database fails it: a claim left in place lapses after <see cref="ClaimLease"/> and the report goes out twice.
    /// </summary>
    private async Task RecordSentAsync(Guid gymId, DateTime end, DateTime at)
    {
        for (var tries = 1; ; tries++)
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                await scope.ServiceProvider.GetRequiredService<GymwireDbContext>().ReportSchedules.Where(s => s.GymId == gymId && s.ReportedThrough == end)
                    .ExecuteUpdateAsync(s => s.SetProperty(x => x.LastSentAt, at)
                        .SetProperty(x => x.LastFailureAt, (DateTime?)null).SetProperty(x => x.LastFailure, (string?)null)
                        .SetProperty(x => x.ClaimedFrom, (DateTime?)null).SetProperty(x => x.ClaimedUntil, (DateTime?)null), CancellationToken.None);
                return;
            }
            catch (Exception e) when (tries < SentRecordTries)
            {
                LogSentRecordRetry(logger, gymId, tries, e);
            }
        }
    }

    private const int SentRecordTries = 5;

    private const string ServerError = "Gymwire could not prepare the report (a server error, in the server's log).";

    private Task GiveBackAsync(GymwireDbContext db, Guid gymId, DateTime start, DateTime end, string? failure, CancellationToken ct)
    {
        var at = clock.GetUtcNow().UtcDateTime;
        return db.ReportSchedules.Where(s => s.GymId == gymId && s.ReportedThrough == end).ExecuteUpdateAsync(s =>
        {
            s.SetProperty(x => x.ReportedThrough, start).SetProperty(x => x.ClaimedFrom, (DateTime?)null).SetProperty(x => x.ClaimedUntil, (DateTime?)null);
            if (failure is not null)
            {
                s.SetProperty(x => x.LastFailureAt, at).SetProperty(x => x.LastFailure, failure);
            }
        }, ct);
    }

    // A fresh scope, and no cancellation: the give-back must happen even while the server is stopping.
    private async Task GiveBackAfterFailureAsync(Guid gymId, DateTime start, DateTime end, string? failure)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            await GiveBackAsync(scope.ServiceProvider.GetRequiredService<GymwireDbContext>(), gymId, start, end, failure, CancellationToken.None);
        }
        catch (Exception e)
        {
            LogGiveBackFailed(logger, gymId, start, end, e);
        }
    }

    /// <summary>
    /// The report of <paramref name="range"/>'s days: the members of those days, and the payments and refunds Gymwire
    /// recorded in <paramref name="recorded"/> (the period's instants), each with its own date.
    /// </summary>
    internal static async Task<EmailMessage> BuildAsync(GymwireDbContext db, ReportSchedule schedule, ExportRange range, RecordedPeriod recorded, CancellationToken ct)
    {
        var (gymId, frequency, format) = (schedule.GymId, schedule.Frequency, schedule.Format);
        // The order the owner chose for their QuickBooks company; a value from outside the API (a hand-edited row) gets the default.
        var dates = AccountingExports.ParseDateOrder(schedule.QuickBooksDateOrder) ?? QuickBooksDates.MonthFirst;
        var attachments = new List<EmailAttachment>();
        ExportKind[] kinds = format == ReportFormats.Html ? [] : [ExportKind.Payments, ExportKind.Refunds, ExportKind.Members, ExportKind.QuickBooks];
        foreach (var kind in kinds)
        {
            using var buffer = new MemoryStream();
            await AccountingExports.WriteAsync(db, gymId, kind, range, dates, recorded, buffer, ct);
            attachments.Add(new EmailAttachment(AccountingExports.FileName(kind, range), "text/csv; charset=utf-8", buffer.ToArray()));
        }
        var gym = await db.Gyms.AsNoTracking().Where(g => g.Id == gymId).Select(g => g.Name).FirstOrDefaultAsync(ct) ?? "your gym";
        var received = await AccountingExports.Received(db, gymId, range, recorded)
            .GroupBy(p => p.Currency).Select(g => new { Currency = g.Key, Count = g.Count(), Cents = g.Sum(p => (long)p.AmountCents) }).ToListAsync(ct);
        var refunded = await AccountingExports.Refunded(db, gymId, range, recorded)
            .GroupBy(p => p.Currency).Select(g => new { Currency = g.Key, Count = g.Count(), Cents = g.Sum(p => (long)p.AmountCents) }).ToListAsync(ct);
        var period = range.From == range.To ? $"{range.From:yyyy-MM-dd}" : $"{range.From:yyyy-MM-dd} to {range.To:yyyy-MM-dd}";
        var zone = GymTimeZones.Name(range.Zone);
        var receivedLine = received.Count == 0 ? "none" : string.Join("; ", received.Select(r =>
            $"{r.Count} totalling {CurrencyAmounts.Format(r.Cents, r.Currency)} {r.Currency.ToUpperInvariant()}"));
        var refundedLine = refunded.Count == 0 ? "none" : string.Join("; ", refunded.Select(r =>
            $"{r.Count} totalling -{CurrencyAmounts.Format(r.Cents, r.Currency)} {r.Currency.ToUpperInvariant()}"));
        var body = new StringBuilder();
        body.AppendLine(CultureInfo.InvariantCulture, $"Your {frequency} accounting report for {gym}, {period} ({zone}).");
        body.AppendLine();
        body.AppendLine(CultureInfo.InvariantCulture, $"Payments received: {receivedLine}.");
        body.AppendLine(CultureInfo.InvariantCulture, $"Refunds: {refundedLine}.");
        body.AppendLine();
        string? html = null;
        if (format == ReportFormats.Html)
        {
            body.AppendLine("Download the payments, refunds and members of any range as CSV from the dashboard's Exports page.");
            html = Html(gym, frequency, period, zone, receivedLine, refundedLine);
        }
        else
        {
            body.AppendLine("The attached payments, refunds and members CSV files import into Xero or a spreadsheet; the QuickBooks file into QuickBooks Online's " +
                $"bank upload (Transactions, Bank transactions, Upload from file), with its dates {(dates == QuickBooksDates.DayFirst ? "DD/MM/YYYY" : "MM/DD/YYYY")}.");
        }
        return new EmailMessage([], $"Gymwire {frequency} report: {period}", body.ToString(), attachments, html);
    }

    // The same figures as the text part, as a small HTML document (every value encoded).
    private static string Html(string gym, string frequency, string period, string zone, string received, string refunded)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        return $"""
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>{E($"Gymwire {frequency} report: {period}")}</title></head>
            <body style="font-family: sans-serif; color: #1a1a1a;">
            <h1 style="font-size: 1.25em;">{E($"Your {frequency} accounting report for {gym}")}</h1>
            <p>{E($"{period} ({zone})")}</p>
            <table style="border-collapse: collapse;">
            <tr><th scope="row" style="text-align: left; padding: 4px 12px 4px 0;">Payments received</th><td style="padding: 4px 0;">{E(received)}</td></tr>
            <tr><th scope="row" style="text-align: left; padding: 4px 12px 4px 0;">Refunds</th><td style="padding: 4px 0;">{E(refunded)}</td></tr>
            </table>
            <p>Download the payments, refunds and members of any range as CSV from the dashboard's Exports page.</p>
            </body></html>
            """;
    }

    [LoggerMessage(EventId = 8317, Level = LogLevel.Warning, Message = "Could not record the sent report of gym {GymId} (try {Try}); trying again")]
    private static partial void LogSentRecordRetry(ILogger logger, Guid gymId, int @try, Exception exception);

    [LoggerMessage(EventId = 8316, Level = LogLevel.Warning, Message = "{Count} scheduled report(s) claimed by a node that stopped before sending; their periods go back to be sent")]
    private static partial void LogClaimsLapsed(ILogger logger, int count);

    [LoggerMessage(EventId = 8311, Level = LogLevel.Error, Message = "A scheduled-report pass failed; trying again later")]
    private static partial void LogPassFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 8312, Level = LogLevel.Error, Message = "The scheduled report of gym {GymId} failed; the next pass tries again")]
    private static partial void LogReportFailed(ILogger logger, Guid gymId, Exception exception);

    [LoggerMessage(EventId = 8313, Level = LogLevel.Error, Message = "Could not give back the report period {Start:u} to {End:u} of gym {GymId}; it goes back when its claim lapses")]
    private static partial void LogGiveBackFailed(ILogger logger, Guid gymId, DateTime start, DateTime end, Exception exception);
}
