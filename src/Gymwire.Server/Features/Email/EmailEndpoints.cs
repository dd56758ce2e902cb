using System.Text.Json.Serialization;
using Gymwire.Features.Dashboard.Integrations;
using Gymwire.Features.Exports;

namespace Gymwire.Features.Email;

/// <summary>
/// The gym's scheduled report; without one, <c>enabled</c> is false and the rest null. <c>send_to_owners</c>,
/// <c>recipients</c>, <c>format</c> and <c>quickbooks_date_order</c> are as the PUT takes them.
/// </summary>
public sealed record ReportScheduleDto(
    bool Enabled, string? Frequency, DateTime? NextReportAt, DateTime? LastSentAt, DateTime? LastFailureAt, string? LastFailure,
    bool? SendToOwners, IReadOnlyList<string>? Recipients, string? Format,
    [property: JsonPropertyName("quickbooks_date_order")] string? QuickBooksDateOrder);

/// <summary>
/// The frequency, and optionally to whom (the owners, other addresses or both), in which format, and the QuickBooks
/// file's date order; a field left out keeps what is stored (for a new schedule: the owners, no other address, csv, mdy).
/// </summary>
public sealed record SetReportScheduleRequest(
    string? Frequency, bool? SendToOwners = null, List<string?>? Recipients = null, string? Format = null,
    [property: JsonPropertyName("quickbooks_date_order")] string? QuickBooksDateOrder = null);

/// <summary>Email out: SMTP, owner notifications, and the owner's scheduled accounting reports.</summary>
public static class EmailEndpoints
{
    public static IEndpointRouteBuilder MapEmail(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/gym/exports/schedule").WithTags("Exports").RequireAuthorization(Policies.Owner);
        group.MapGet("/", GetSchedule).WithSummary("The scheduled accounting report: how often, to whom, in which format, and when it is next sent");
        group.MapPut("/", SetSchedule).RequireRateLimiting(RateLimitPolicies.Mutations)
            .WithSummary("Email the CSV exports of each day, week (from Monday) or month, at the period's end (the gym's midnight), to the owners, other addresses or both");
        group.MapDelete("/", DeleteSchedule).RequireRateLimiting(RateLimitPolicies.Destructive).WithSummary("Stop the scheduled report");
        return app;
    }

    internal static async Task<Ok<ReportScheduleDto>> GetSchedule(ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        return TypedResults.Ok(Map(await db.ReportSchedules.AsNoTracking().FirstOrDefaultAsync(s => s.GymId == gymId, ct), await GymTimeZones.OfGymAsync(db, gymId, ct)));
    }

    internal static async Task<Results<Ok<ReportScheduleDto>, BadRequest<ErrorResponse>, Conflict<ErrorResponse>>> SetSchedule(
        SetReportScheduleRequest request, ClaimsPrincipal user, GymwireDbContext db, IEmailSender email, ReportScheduleService schedules, CancellationToken ct)
    {
        var v = new RequestValidator().Required(request.Frequency, "frequency", 16).OneOf(request.Frequency, "frequency", ReportFrequencies.All)
            .OneOf(request.Format, "format", ReportFormats.All)
            .OneOf(request.QuickBooksDateOrder, "quickbooks_date_order", AccountingExports.DateOrders);
        if (v.Error is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        IReadOnlyList<string>? others = null;
        if (request.Recipients is { } recipients && (others = ReportRecipients.Check(recipients, out var recipientsError)) is null)
        {
            return ApiErrors.BadRequest($"'recipients': {recipientsError}");
        }
        var gymId = user.GetGymId();
        // A field left out keeps what is stored, so the report must go somewhere once both are taken together.
        var stored = await db.ReportSchedules.AsNoTracking().Where(s => s.GymId == gymId)
            .Select(s => new { s.SendToOwners, s.Recipients }).FirstOrDefaultAsync(ct);
        var toOwners = request.SendToOwners ?? stored?.SendToOwners ?? true;
        var toOthers = others is not null ? others.Count > 0 : ReportRecipients.Split(stored?.Recipients).Count > 0;
        if (!toOwners && !toOthers)
        {
            return ApiErrors.BadRequest("The report must go to someone: 'send_to_owners' true, or at least one address in 'recipients'");
        }
        if (!email.IsConfigured)
        {
            return ApiErrors.Conflict("Email is not configured on this server (Email:Smtp:Host), so reports cannot be emailed");
        }
        var saved = await schedules.SaveAsync(gymId, request.Frequency!, request.SendToOwners, others, request.Format, request.QuickBooksDateOrder, ct);
        return TypedResults.Ok(Map(saved, await GymTimeZones.OfGymAsync(db, gymId, ct)));
    }

    internal static async Task<NoContent> DeleteSchedule(ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        await db.ReportSchedules.Where(s => s.GymId == gymId).ExecuteDeleteAsync(ct);
        return TypedResults.NoContent();
    }

    private static ReportScheduleDto Map(ReportSchedule? s, TimeZoneInfo zone) => s is null
        ? new(false, null, null, null, null, null, null, null, null, null)
        : new(true, s.Frequency, ReportFrequencies.Next(s.Frequency, s.ReportedThrough, zone), s.LastSentAt, s.LastFailureAt, s.LastFailure,
            s.SendToOwners, ReportRecipients.Split(s.Recipients), s.Format, s.QuickBooksDateOrder);

    /// <summary>"2026-03-08 23:30 America/New_York": a time in the gym's zone, named.</summary>
    internal static string Time(DateTime t, TimeZoneInfo zone) => GymTimeZones.Minutes(t, zone);
}

/// <summary>The Email tile: the SMTP server, and the gym's last failed email with its time.</summary>
public sealed class EmailStatus(GymwireDbContext db, IEmailSender sender) : IntegrationTile(
    "email", "Email", "Owner notifications and scheduled reports, sent through your SMTP server.", 30,
    guidance:
        "Email is set in the server's configuration: Email:Smtp:Host, Port, Username, Password, From and UseTls. Gymwire emails the gym's owners " +
        "when a webhook is disabled for failing, and the scheduled accounting reports.")
{
    public override async Task<IntegrationStatus> GetStatusAsync(Guid gymId, CancellationToken ct)
    {
        if (!sender.IsConfigured)
        {
            return IntegrationStatus.NotConnected("No SMTP server is configured on this server; owner notifications are not emailed.");
        }
        var last = await db.EmailDeliveries.AsNoTracking().Where(d => d.GymId == gymId).OrderByDescending(d => d.CreatedAt)
            .Select(d => new { d.Status, d.Error, d.CreatedAt }).FirstOrDefaultAsync(ct);
        if (last is { Status: "failed" })
        {
            var zone = await GymTimeZones.OfGymAsync(db, gymId, ct);
            return IntegrationStatus.Error($"{sender.Describe()}. The last email failed at {EmailEndpoints.Time(last.CreatedAt, zone)}: {last.Error}");
        }
        return IntegrationStatus.Connected(last is null
            ? $"{sender.Describe()}."
            : $"{sender.Describe()}. Last email sent {EmailEndpoints.Time(last.CreatedAt, await GymTimeZones.OfGymAsync(db, gymId, ct))}.");
    }
}

/// <summary>The Accounting export tile: connected once the gym has a scheduled report; downloads need no set-up.</summary>
public sealed class AccountingReportStatus(GymwireDbContext db) : IIntegrationStatusProvider
{
    public string Key => "accounting";
    public string Name => "Accounting export";
    public string Description => "CSV exports and scheduled reports for QuickBooks, Xero and other accounting platforms.";
    public int Order => 40;
    public string? ConfigureUrl => null;
    public string Guidance =>
        "Download payments, refunds and members as CSV for any range of up to 366 days from the Exports page or " +
        "GET /api/gym/exports/{payments|refunds|members}.csv?from=YYYY-MM-DD&to=YYYY-MM-DD. To have them emailed to you after each day, week " +
        "or month, set PUT /api/gym/exports/schedule {\"frequency\": \"weekly\"}.";

    public async Task<IntegrationStatus> GetStatusAsync(Guid gymId, CancellationToken ct)
    {
        var s = await db.ReportSchedules.AsNoTracking().FirstOrDefaultAsync(x => x.GymId == gymId, ct);
        if (s is null)
        {
            return IntegrationStatus.NotConnected("No scheduled report is set up. CSV exports of payments, refunds and members can be downloaded from the Exports page at any time.");
        }
        var zone = await GymTimeZones.OfGymAsync(db, gymId, ct);
        if (s.LastFailureAt is { } failed && (s.LastSentAt is null || s.LastSentAt < failed))
        {
            return IntegrationStatus.Error($"The {s.Frequency} report could not be emailed at {EmailEndpoints.Time(failed, zone)}: {s.LastFailure} It will be retried.");
        }
        var next = ReportFrequencies.Next(s.Frequency, s.ReportedThrough, zone);
        return IntegrationStatus.Connected($"A {s.Frequency} report is emailed to {ReportRecipients.Describe(s)}; next after {EmailEndpoints.Time(next, zone)}.");
    }
}
