using System.Globalization;
using System.Text;
using Gymwire.Data;
using Gymwire.Features.Exports;
using Gymwire.Features.Payments;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Gymwire.Infrastructure;

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
/// At each period boundary (UTC midnight, Monday, the 1st, on <see cref="TimeProvider"/>), emails each scheduled gym's
/// owners the CSV exports of the period that ended. A period is claimed with a conditional update of
/// <see cref="ReportSchedule.ReportedThrough"/> before sending, so two nodes never both send it; a failed send gives
/// the claim back, and the next pass retries. A server that was down catches up one period per pass.
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
            catch (Exception e) when (e is not OperationCanceledException)
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

    internal async Task RunOnceAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var notifications = scope.ServiceProvider.GetRequiredService<OwnerNotifications>();
        var now = clock.GetUtcNow().UtcDateTime;
        var schedules = await db.ReportSchedules.AsNoTracking().ToListAsync(ct);
        foreach (var schedule in schedules)
        {
            var start = schedule.ReportedThrough;
            var end = ReportFrequencies.Next(schedule.Frequency, start);
            if (end > now)
            {
                continue;
            }
            var claimed = await db.ReportSchedules
                .Where(s => s.GymId == schedule.GymId && s.ReportedThrough == start && s.Frequency == schedule.Frequency)
                .ExecuteUpdateAsync(s => s.SetProperty(x => x.ReportedThrough, end), ct);
            if (claimed == 0)
            {
                continue;
            }
            var message = await BuildAsync(db, schedule.GymId, schedule.Frequency, new ExportRange(DateOnly.FromDateTime(start), DateOnly.FromDateTime(end.AddDays(-1))), ct);
            var sent = await notifications.SendToOwnersAsync(schedule.GymId, "report", message, ct);
            var at = clock.GetUtcNow().UtcDateTime;
            if (sent)
            {
                await db.ReportSchedules.Where(s => s.GymId == schedule.GymId)
                    .ExecuteUpdateAsync(s => s.SetProperty(x => x.LastSentAt, at).SetProperty(x => x.LastFailure, (string?)null), ct);
            }
            else
            {
                var error = await db.EmailDeliveries.Where(d => d.GymId == schedule.GymId).OrderByDescending(d => d.CreatedAt)
                    .Select(d => d.Error).FirstOrDefaultAsync(ct);
                // Give the period back, so the next pass sends it again.
                await db.ReportSchedules.Where(s => s.GymId == schedule.GymId && s.ReportedThrough == end)
                    .ExecuteUpdateAsync(s => s.SetProperty(x => x.ReportedThrough, start).SetProperty(x => x.LastFailureAt, at)
                        .SetProperty(x => x.LastFailure, error), ct);
            }
        }
    }

    internal static async Task<EmailMessage> BuildAsync(GymwireDbContext db, Guid gymId, string frequency, ExportRange range, CancellationToken ct)
    {
        var attachments = new List<EmailAttachment>();
        foreach (var kind in new[] { ExportKind.Payments, ExportKind.Refunds, ExportKind.Members })
        {
            using var buffer = new MemoryStream();
            await AccountingExports.WriteAsync(db, gymId, kind, range, buffer, ct);
            attachments.Add(new EmailAttachment(AccountingExports.FileName(kind, range), "text/csv; charset=utf-8", buffer.ToArray()));
        }
        var gym = await db.Gyms.AsNoTracking().Where(g => g.Id == gymId).Select(g => g.Name).FirstOrDefaultAsync(ct) ?? "your gym";
        var received = await db.Payments.AsNoTracking()
            .Where(p => p.GymId == gymId && p.Status != PaymentStatuses.Failed && p.CreatedAt >= range.Start && p.CreatedAt < range.EndExclusive)
            .GroupBy(p => p.Currency).Select(g => new { Currency = g.Key, Count = g.Count(), Cents = g.Sum(p => (long)p.AmountCents) }).ToListAsync(ct);
        var refunded = await db.Payments.AsNoTracking()
            .Where(p => p.GymId == gymId && p.Status == PaymentStatuses.Refunded && p.RefundedAt >= range.Start && p.RefundedAt < range.EndExclusive)
            .GroupBy(p => p.Currency).Select(g => new { Currency = g.Key, Count = g.Count(), Cents = g.Sum(p => (long)p.AmountCents) }).ToListAsync(ct);
        var period = range.From == range.To ? $"{range.From:yyyy-MM-dd}" : $"{range.From:yyyy-MM-dd} to {range.To:yyyy-MM-dd}";
        var body = new StringBuilder();
        body.AppendLine(CultureInfo.InvariantCulture, $"Your {frequency} accounting report for {gym}, {period} (UTC).");
        body.AppendLine();
        body.AppendLine(received.Count == 0 ? "Payments received: none." : "Payments received: " + string.Join("; ", received.Select(r =>
            $"{r.Count} totalling {AccountingExportsFormat.Amount(r.Cents)} {r.Currency.ToUpperInvariant()}")) + ".");
        body.AppendLine(refunded.Count == 0 ? "Refunds: none." : "Refunds: " + string.Join("; ", refunded.Select(r =>
            $"{r.Count} totalling -{AccountingExportsFormat.Amount(r.Cents)} {r.Currency.ToUpperInvariant()}")) + ".");
        body.AppendLine();
        body.AppendLine("The attached CSV files (payments, refunds, members) import into QuickBooks, Xero or a spreadsheet.");
        return new EmailMessage([], $"Gymwire {frequency} report: {period}", body.ToString(), attachments);
    }

    [LoggerMessage(EventId = 8311, Level = LogLevel.Error, Message = "A scheduled-report pass failed; trying again later")]
    private static partial void LogPassFailed(ILogger logger, Exception exception);
}

internal static class AccountingExportsFormat
{
    public static string Amount(long cents) => (cents / 100m).ToString("0.00", CultureInfo.InvariantCulture);
}
