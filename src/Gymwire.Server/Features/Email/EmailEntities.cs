using Gymwire.Features.Exports;

namespace Gymwire.Features.Email;

/// <summary>One email Gymwire tried to send for a gym, with its outcome: the Email tile's source and the owner's trail.</summary>
public sealed class EmailDelivery
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    /// <summary><c>notification</c> or <c>report</c>.</summary>
    public required string Kind { get; set; }
    public required string Recipients { get; set; }
    public required string Subject { get; set; }
    /// <summary><c>sent</c> or <c>failed</c>.</summary>
    public required string Status { get; set; }
    public string? Error { get; set; }
    public DateTime CreatedAt { get; set; }
}

/// <summary>A gym's scheduled accounting report: the exports of each past period, emailed to its recipients.</summary>
public sealed class ReportSchedule
{
    public Guid GymId { get; set; }
    /// <summary><c>daily</c>, <c>weekly</c> (periods start Monday) or <c>monthly</c>, in the gym's time zone.</summary>
    public required string Frequency { get; set; }
    /// <summary>
    /// The end of the last period reported (a period boundary: the gym's midnight, in UTC); the next report covers the
    /// period after it.
    /// </summary>
    public DateTime ReportedThrough { get; set; }
    /// <summary>
    /// Send to the gym's owners, whoever they are when the report goes out, so an owner added later gets it too.
    /// </summary>
    public bool SendToOwners { get; set; } = true;
    /// <summary>Comma-separated addresses (<see cref="ReportRecipients"/>) that get the report besides the owners (or instead of them); null for none.</summary>
    public string? Recipients { get; set; }
    /// <summary><see cref="ReportFormats"/>.</summary>
    public string Format { get; set; } = ReportFormats.Csv;
    /// <summary>
    /// The QuickBooks file's date order, <c>mdy</c> or <c>dmy</c> (<see cref="AccountingExports.DateOrders"/>): the
    /// order of the owner's QuickBooks company, which a scheduled report cannot ask at send time.
    /// </summary>
    public string QuickBooksDateOrder { get; set; } = AccountingExports.MonthFirst;
    public DateTime CreatedAt { get; set; }
    public DateTime? LastSentAt { get; set; }
    public DateTime? LastFailureAt { get; set; }
    public string? LastFailure { get; set; }
    /// <summary>While a node sends a period's report: the period's start, given back if the node stops before it sent.</summary>
    public DateTime? ClaimedFrom { get; set; }
    /// <summary>Until when the node that claimed the period owns its send; past it, that node died mid-send.</summary>
    public DateTime? ClaimedUntil { get; set; }
}

/// <summary>
/// Report periods are whole days of the gym's time zone: they start at its midnight (a 23- or 25-hour day where the
/// clocks change), stored as the UTC instant.
/// </summary>
public static class ReportFrequencies
{
    public const string Daily = "daily";
    public const string Weekly = "weekly";
    public const string Monthly = "monthly";
    public static readonly string[] All = [Daily, Weekly, Monthly];

    /// <summary>The start (UTC) of the period that contains <paramref name="at"/>.</summary>
    public static DateTime PeriodStart(string frequency, DateTime at, TimeZoneInfo zone) =>
        GymTimeZones.StartOfDayUtc(StartDay(frequency, GymTimeZones.LocalDate(at, zone)), zone);

    /// <summary>
    /// The end (UTC) of the period that starts at <paramref name="periodStart"/>: the end of the day, week or month
    /// its local day falls in. A start that is not a boundary of the frequency (it changed mid-period) or not the
    /// zone's midnight (the gym changed its time zone) makes a shorter first report, so no day is ever skipped and
    /// the reports after it keep to calendar weeks and months.
    /// </summary>
    public static DateTime Next(string frequency, DateTime periodStart, TimeZoneInfo zone) =>
        GymTimeZones.StartOfDayUtc(NextDay(frequency, StartDay(frequency, GymTimeZones.LocalDate(periodStart, zone))), zone);

    private static DateOnly StartDay(string frequency, DateOnly day) => frequency switch
    {
        Weekly => day.AddDays(-(((int)day.DayOfWeek + 6) % 7)),
        Monthly => new DateOnly(day.Year, day.Month, 1),
        _ => day,
    };

    private static DateOnly NextDay(string frequency, DateOnly start) => frequency switch
    {
        Weekly => start.AddDays(7),
        Monthly => start.AddMonths(1),
        _ => start.AddDays(1),
    };
}

public static class ReportFormats
{
    /// <summary>The payments, refunds, members and QuickBooks CSV files attached, the totals in the text.</summary>
    public const string Csv = "csv";
    /// <summary>The totals as an HTML email (with a plain-text part), no attachments.</summary>
    public const string Html = "html";
    public static readonly string[] All = [Csv, Html];
}

/// <summary>A report's recipients: one or more email addresses, stored comma-separated.</summary>
public static class ReportRecipients
{
    public const int MaxLength = 2000;
    public const int MaxCount = 20;

    /// <summary>
    /// Splits what the owner typed (commas, semicolons, spaces or lines between addresses), checks each address, and
    /// returns them without duplicates; or null with the reason.
    /// </summary>
    public static IReadOnlyList<string>? Parse(string? input, out string? error)
    {
        var parts = (input ?? "").Split([',', ';', ' ', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0)
        {
            error = "Enter at least one email address to send the report to.";
            return null;
        }
        return Check(parts, out error);
    }

    /// <summary>
    /// Checks each address as given (the API's list), and returns them without duplicates (none for an empty list); or
    /// null with the reason.
    /// </summary>
    public static IReadOnlyList<string>? Check(IEnumerable<string?> input, out string? error)
    {
        error = null;
        var addresses = new List<string>();
        foreach (var part in input.Select(a => a ?? ""))
        {
            if (!IsAddress(part))
            {
                error = $"'{(part.Length > 80 ? ColumnText.Fit(part, 80) + "…" : part)}' is not an email address.";
                return null;
            }
            if (!addresses.Contains(part, StringComparer.OrdinalIgnoreCase))
            {
                addresses.Add(part);
            }
            // Inside the loop, so a long list costs no more than the first addresses past the limit.
            if (addresses.Count > MaxCount)
            {
                error = $"A report may go to at most {MaxCount} addresses.";
                return null;
            }
        }
        if (string.Join(", ", addresses).Length > MaxLength)
        {
            error = $"The addresses may total at most {MaxLength} characters.";
            return null;
        }
        return addresses;
    }

    public static IReadOnlyList<string> Split(string? stored) =>
        stored is null ? [] : stored.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>To whom a schedule sends, in words: "the gym's owners", "the gym's owners and a@example.com", "a@example.com".</summary>
    public static string Describe(ReportSchedule schedule)
    {
        var others = string.Join(", ", Split(schedule.Recipients));
        return (schedule.SendToOwners, others.Length > 0) switch
        {
            (true, true) => $"the gym's owners and {others}",
            (true, false) => "the gym's owners",
            _ => others,
        };
    }

    public static string Join(IEnumerable<string> addresses) => string.Join(", ", addresses);

    // The check owners' addresses get too, so the sender never fails to parse one.
    private static bool IsAddress(string value) => Gymwire.Infrastructure.RequestValidator.IsMailbox(value);
}
