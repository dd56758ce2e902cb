namespace Gymwire.Features.Email;

/// <summary>
/// Saves a gym's scheduled report: what the API's PUT and the dashboard's form share, kept in the feature rather than
/// its endpoints so other features call it here.
/// </summary>
public sealed class ReportScheduleService(GymwireDbContext db, TimeProvider clock, ReportSignal signal)
{
    /// <summary>
    /// Sets a gym's report frequency, and its recipients (exactly these addresses, the owners not among them unless
    /// listed) and format where given (validated by the caller; null keeps what is stored).
    /// </summary>
    public Task<ReportSchedule> SaveAsync(Guid gymId, string frequency, IReadOnlyList<string>? recipients, string? format, CancellationToken ct) =>
        SaveAsync(gymId, frequency, recipients is null ? null : false, recipients, format, null, ct);

    /// <summary>
    /// Sets a gym's report frequency, whether it goes to the gym's owners, the other addresses it goes to, its format
    /// and its QuickBooks file's date order, where given (validated by the caller; null keeps what is stored): the API's
    /// PUT and the dashboard's form.
    /// </summary>
    public async Task<ReportSchedule> SaveAsync(
        Guid gymId, string frequency, bool? sendToOwners, IReadOnlyList<string>? others, string? format, string? quickBooksDateOrder, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        for (var tries = 1; ; tries++)
        {
            var schedule = await db.ReportSchedules.FirstOrDefaultAsync(s => s.GymId == gymId, ct);
            if (schedule is null)
            {
                schedule = new ReportSchedule { GymId = gymId, Frequency = frequency, CreatedAt = now };
                db.ReportSchedules.Add(schedule);
            }
            if (schedule.ReportedThrough == default)
            {
                // The first report covers the period in progress (in the gym's time zone), sent when it ends.
                schedule.ReportedThrough = ReportFrequencies.PeriodStart(frequency, now, await GymTimeZones.OfGymAsync(db, gymId, ct));
            }
            // A new frequency keeps ReportedThrough: the next report starts where the last one ended, so a change never
            // skips a day or reports one twice (ReportFrequencies.Next ends it at the new frequency's boundary).
            schedule.Frequency = frequency;
            if (sendToOwners is { } owners)
            {
                schedule.SendToOwners = owners;
            }
            if (others is not null)
            {
                schedule.Recipients = others.Count == 0 ? null : ReportRecipients.Join(others);
            }
            if (format is not null)
            {
                schedule.Format = format;
            }
            if (quickBooksDateOrder is not null)
            {
                schedule.QuickBooksDateOrder = quickBooksDateOrder;
            }
            try
            {
                await db.SaveChangesAsync(ct);
            }
            catch (DbUpdateException e) when (tries == 1 && ErrorHandling.IsUniqueViolation(e))
            {
                // Another request saved the gym's first schedule meanwhile (two tabs): this one is saved over it.
                db.ChangeTracker.Clear();
                continue;
            }
            signal.Notify();
            return schedule;
        }
    }
}
