using CsvHelper;
using Gymwire.Features.Payments;

namespace Gymwire.Features.Exports;

/// <summary>
/// A date range of whole days of the gym's time zone, both ends included: it starts at the gym's midnight on
/// <see cref="From"/> and ends at its midnight after <see cref="To"/> (a day where the clocks change has 23 or 25 hours).
/// </summary>
public readonly record struct ExportRange(DateOnly From, DateOnly To, TimeZoneInfo Zone)
{
    public const int MaxDays = 366;

    /// <summary>The range's first instant, UTC.</summary>
    public DateTime Start => GymTimeZones.StartOfDayUtc(From, Zone);

    /// <summary>The instant after the range, UTC.</summary>
    public DateTime EndExclusive => GymTimeZones.StartOfDayUtc(To.AddDays(1), Zone);

    /// <summary>The local date of an instant, as the export's Date columns show it.</summary>
    public DateOnly LocalDate(DateTime utc) => GymTimeZones.LocalDate(utc, Zone);

    /// <summary>Parses <c>from</c> and <c>to</c> (YYYY-MM-DD, days in <paramref name="zone"/>), or says what is wrong with them.</summary>
    public static string? TryParse(string? from, string? to, TimeZoneInfo zone, out ExportRange range)
    {
        range = default;
        if (string.IsNullOrEmpty(from) || string.IsNullOrEmpty(to))
        {
            return "'from' and 'to' are required dates (YYYY-MM-DD)";
        }
        if (!DateOnly.TryParseExact(from, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var f))
        {
            return "'from' must be a date YYYY-MM-DD";
        }
        if (!DateOnly.TryParseExact(to, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var t))
        {
            return "'to' must be a date YYYY-MM-DD";
        }
        if (f > t)
        {
            return "'from' must not be after 'to'";
        }
        if (t == DateOnly.MaxValue)
        {
            // The range ends at the start of the day after 'to', which does not exist for the last representable day.
            return $"'to' must be before {DateOnly.MaxValue:yyyy-MM-dd}";
        }
        if (t.DayNumber - f.DayNumber + 1 > MaxDays)
        {
            return $"The range may cover at most {MaxDays} days; export longer periods in parts";
        }
        range = new ExportRange(f, t, zone);
        return null;
    }
}

/// <summary>
/// A scheduled report's period, UTC: its payments and refunds are those Gymwire recorded in it, not those dated in it, so
/// one recorded after its day's report went out (Stripe retrying, the server down) is in the next report, and none is
/// in two. The rows keep their own dates.
/// </summary>
public readonly record struct RecordedPeriod(DateTime Start, DateTime End);

public enum ExportKind
{
    Payments,
    Refunds,
    Members,
    QuickBooks,
}

/// <summary>
/// The order of day and month in the QuickBooks file's dates: QuickBooks Online reads them as the company's region
/// writes dates (MM/dd/yyyy in the US, dd/MM/yyyy in the UK and most other regions), and a date such as 01/04 fits both.
/// </summary>
public enum QuickBooksDates
{
    MonthFirst,
    DayFirst,
}

/// <summary>
/// CSV exports (one row per transaction, a date, a contact, a description, a signed amount in major units; dates are
/// the gym's local dates): RFC 4180 (CRLF, quoted where needed), UTF-8 with a byte-order mark so spreadsheet programs
/// read names correctly, invariant culture. The payments and refunds files (ISO dates) map onto Xero's bank statement
/// import; the QuickBooks file has the three columns QuickBooks Online's bank upload reads, and no others.
/// </summary>
public static class AccountingExports
{
    public static readonly string[] PaymentColumns = ["Date", "Customer", "Email", "Description", "Amount", "Currency", "Status", "Reference"];
    public static readonly string[] MemberColumns = ["Name", "Email", "Phone", "Role", "Joined", "Left"];
    public static readonly string[] QuickBooksColumns = ["Date", "Description", "Amount"];

    /// <summary>The QuickBooks file's date orders as the API names them: <c>mdy</c> (MM/dd/yyyy, the default) and <c>dmy</c> (dd/MM/yyyy).</summary>
    public const string MonthFirst = "mdy";
    public const string DayFirst = "dmy";
    public static readonly string[] DateOrders = [MonthFirst, DayFirst];

    /// <summary>"mdy" or "dmy", as the API's <c>date_order</c> takes them; null for anything else.</summary>
    public static QuickBooksDates? ParseDateOrder(string? value) => value switch
    {
        null or "" or MonthFirst => QuickBooksDates.MonthFirst,
        DayFirst => QuickBooksDates.DayFirst,
        _ => null,
    };

    public static string FileName(ExportKind kind, ExportRange range) =>
        $"{kind.ToString().ToLowerInvariant()}-{range.From:yyyy-MM-dd}-to-{range.To:yyyy-MM-dd}.csv";

    public static Task WriteAsync(GymwireDbContext db, Guid gymId, ExportKind kind, ExportRange range, Stream output, CancellationToken ct) =>
        WriteAsync(db, gymId, kind, range, QuickBooksDates.MonthFirst, output, ct);

    /// <param name="dates">The QuickBooks file's date order; the other files have ISO dates.</param>
    public static Task WriteAsync(GymwireDbContext db, Guid gymId, ExportKind kind, ExportRange range, QuickBooksDates dates, Stream output, CancellationToken ct) =>
        WriteAsync(db, gymId, kind, range, dates, recorded: null, output, ct);

    /// <param name="recorded">A scheduled report's period: its payments and refunds are those recorded in it (the members still those of the range).</param>
    public static async Task WriteAsync(GymwireDbContext db, Guid gymId, ExportKind kind, ExportRange range, QuickBooksDates dates, RecordedPeriod? recorded,
        Stream output, CancellationToken ct)
    {
        // RFC 4180 is CsvHelper's default (CRLF, quotes where needed, same field count on every row).
        var options = new CsvWriterOptions { WriteByteOrderMark = true, FormatProvider = CultureInfo.InvariantCulture };
        await using var csv = CsvWriter.Create(output, options, leaveOpen: true);
        switch (kind)
        {
            case ExportKind.Members:
                await WriteMembersAsync(db, gymId, range, csv, ct);
                break;
            case ExportKind.QuickBooks:
                await WriteQuickBooksAsync(db, gymId, range, dates, recorded, csv, ct);
                break;
            default:
                await WritePaymentsAsync(db, gymId, range, recorded, kind == ExportKind.Refunds, csv, ct);
                break;
        }
        await csv.FlushAsync(ct);
    }

    private sealed record PaymentRow(Guid Id, DateTime CreatedAt, DateTime? RefundedAt, int AmountCents, string Currency, string Status, string UserId, string? Name, string? Email, string? Plan)
    {
        public string Description => Plan is null ? "Membership payment" : $"Membership payment: {Plan}";
    }

    /// <summary>
    /// Payments received: paid in the range (a later refund is its own row in the refunds export), or, for a scheduled
    /// report, recorded in its period. Failed payments are in neither.
    /// </summary>
    internal static IQueryable<Payment> Received(GymwireDbContext db, Guid gymId, ExportRange range, RecordedPeriod? recorded)
    {
        var payments = db.Payments.AsNoTracking().Where(p => p.GymId == gymId && p.Status != PaymentStatuses.Failed);
        if (recorded is { } period)
        {
            var (from, until) = (period.Start, period.End);
            return payments.Where(p => p.RecordedAt >= from && p.RecordedAt < until);
        }
        var (start, end) = (range.Start, range.EndExclusive);
        return payments.Where(p => p.CreatedAt >= start && p.CreatedAt < end);
    }

    /// <summary>Refunds: made in the range, or, for a scheduled report, recorded in its period.</summary>
    internal static IQueryable<Payment> Refunded(GymwireDbContext db, Guid gymId, ExportRange range, RecordedPeriod? recorded)
    {
        var payments = db.Payments.AsNoTracking().Where(p => p.GymId == gymId && p.Status == PaymentStatuses.Refunded);
        if (recorded is { } period)
        {
            var (from, until) = (period.Start, period.End);
            return payments.Where(p => p.RefundRecordedAt >= from && p.RefundRecordedAt < until);
        }
        var (start, end) = (range.Start, range.EndExclusive);
        return payments.Where(p => p.RefundedAt >= start && p.RefundedAt < end);
    }

    /// <summary>The payments (or refunds) of <see cref="Received"/> (or <see cref="Refunded"/>), in the order they happened.</summary>
    private static IQueryable<PaymentRow> PaymentRows(GymwireDbContext db, Guid gymId, ExportRange range, RecordedPeriod? recorded, bool refunds)
    {
        var payments = refunds ? Refunded(db, gymId, range, recorded) : Received(db, gymId, range, recorded);
        var rows = from p in payments
                   join m in db.Members.Where(m => m.GymId == gymId) on p.UserId equals m.UserId into members
                   from m in members.DefaultIfEmpty()
                   join plan in db.MembershipPlans.Where(x => x.GymId == gymId) on p.PlanId equals plan.Id into plans
                   from plan in plans.DefaultIfEmpty()
                   orderby refunds ? p.RefundedAt : p.CreatedAt, p.Id
                   select new PaymentRow(p.Id, p.CreatedAt, p.RefundedAt, p.AmountCents, p.Currency, p.Status, p.UserId,
                       m == null ? null : m.Name, m == null ? null : m.Email, plan == null ? null : plan.Name);
        return rows;
    }

    private static async Task WritePaymentsAsync(GymwireDbContext db, Guid gymId, ExportRange range, RecordedPeriod? recorded, bool refunds, CsvWriter csv, CancellationToken ct)
    {
        csv.WriteHeader(PaymentColumns);
        await foreach (var r in PaymentRows(db, gymId, range, recorded, refunds).AsAsyncEnumerable().WithCancellation(ct))
        {
            var date = refunds ? r.RefundedAt!.Value : r.CreatedAt;
            csv.WriteField(Date(range.LocalDate(date)));
            csv.WriteField(Text(r.Name ?? r.UserId));
            csv.WriteField(Text(r.Email ?? ""));
            csv.WriteField(Text(refunds ? $"Refund: {r.Description} of {Date(range.LocalDate(r.CreatedAt))}" : r.Description));
            csv.WriteField(CurrencyAmounts.Value(refunds ? -r.AmountCents : r.AmountCents, r.Currency), CurrencyAmounts.Pattern(r.Currency));
            csv.WriteField(r.Currency.ToUpperInvariant());
            csv.WriteField(r.Status);
            csv.WriteField(r.Id.ToString());
            await csv.EndRecordAsync(ct);
        }
    }

    /// <summary>
    /// QuickBooks Online's three-column bank upload (Date, Description, Amount; "the only columns QuickBooks can
    /// import"): the payments received in the range and the refunds made in it, one signed amount each, in date order.
    /// It has no currency column, so the amounts are in each payment's own currency. A zero amount is left blank, as
    /// QuickBooks asks.
    /// </summary>
    private static async Task WriteQuickBooksAsync(GymwireDbContext db, Guid gymId, ExportRange range, QuickBooksDates dates, RecordedPeriod? recorded,
        CsvWriter csv, CancellationToken ct)
    {
        csv.WriteHeader(QuickBooksColumns);
        var received = await PaymentRows(db, gymId, range, recorded, refunds: false).ToListAsync(ct);
        var refunded = await PaymentRows(db, gymId, range, recorded, refunds: true).ToListAsync(ct);
        var rows = received.Select(r => (At: r.CreatedAt, Row: r, Refund: false))
            .Concat(refunded.Select(r => (At: r.RefundedAt!.Value, Row: r, Refund: true)))
            .OrderBy(x => x.At).ThenBy(x => x.Row.Id).ThenBy(x => x.Refund);
        var format = dates == QuickBooksDates.DayFirst ? "dd/MM/yyyy" : "MM/dd/yyyy";
        foreach (var (at, r, refund) in rows)
        {
            var name = r.Name ?? r.UserId;
            csv.WriteField(range.LocalDate(at).ToString(format, CultureInfo.InvariantCulture));
            csv.WriteField(Text(refund ? $"Refund to {name}: {r.Description}" : $"{name}: {r.Description}"));
            csv.WriteField(r.AmountCents == 0 ? "" : CurrencyAmounts.Format(refund ? -r.AmountCents : r.AmountCents, r.Currency));
            await csv.EndRecordAsync(ct);
        }
    }

    private static async Task WriteMembersAsync(GymwireDbContext db, Guid gymId, ExportRange range, CsvWriter csv, CancellationToken ct)
    {
        csv.WriteHeader(MemberColumns);
        // Everyone who was a member at some point in the range.
        var (start, end) = (range.Start, range.EndExclusive);
        var members = db.Members.AsNoTracking()
            // Half-open as every other row of the exports: someone who left at the range's first instant was not a
            // member during it, and someone who joined at the instant after it was not either.
            .Where(m => m.GymId == gymId && m.JoinedAt < end && (m.LeftAt == null || m.LeftAt > start))
            .OrderBy(m => m.JoinedAt).ThenBy(m => m.Id)
            .Select(m => new { m.Name, m.Email, m.Phone, m.Role, m.JoinedAt, m.LeftAt });
        await foreach (var m in members.AsAsyncEnumerable().WithCancellation(ct))
        {
            csv.WriteField(Text(m.Name));
            csv.WriteField(Text(m.Email ?? ""));
            csv.WriteField(Phone(m.Phone));
            csv.WriteField(m.Role);
            csv.WriteField(Date(range.LocalDate(m.JoinedAt)));
            csv.WriteField(m.LeftAt is { } left ? Date(range.LocalDate(left)) : "");
            await csv.EndRecordAsync(ct);
        }
    }

    /// <summary>
    /// Spreadsheet programs run a cell starting with = + - @ as a formula (CSV injection); a leading apostrophe makes it
    /// text. Free text gets this; amounts are numbers.
    /// </summary>
    private static string Text(string value) =>
        value.Length > 0 && value[0] is '=' or '+' or '-' or '@' or '\t' or '\r' ? "'" + value : value;

    /// <summary>
    /// A phone number is text to keep as written: a spreadsheet reads +15551234567 as a formula and shows it as
    /// 1.56E+10, and drops the leading zero of 07700900123. Every phone gets the apostrophe, as formula text does.
    /// </summary>
    private static string Phone(string? value) => string.IsNullOrEmpty(value) ? "" : "'" + value;

    private static string Date(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

}
