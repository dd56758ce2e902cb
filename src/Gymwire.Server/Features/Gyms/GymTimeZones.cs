using System.Collections.Concurrent;

namespace Gymwire.Features.Gyms;

/// <summary>
/// A gym's time zone (an IANA id such as <c>Europe/Berlin</c>): the dashboard shows times in it, and exports and
/// scheduled reports cut days at its midnight. Times are stored and sent over the API in UTC; only what a person
/// reads, and where a day starts, follows the zone.
/// </summary>
public static partial class GymTimeZones
{
    public const string Utc = "UTC";
    public const int MaxLength = 64;

    private static readonly ConcurrentDictionary<string, TimeZoneInfo> Cache = new(StringComparer.Ordinal);

    /// <summary>The IANA ids the system knows, for the pickers (sorted, UTC first).</summary>
    public static IReadOnlyList<string> All { get; } = Load();

    private static List<string> Load()
    {
        var ids = TimeZoneInfo.GetSystemTimeZones().Where(z => z.HasIanaId).Select(z => z.Id)
            .Where(id => id != Utc).Order(StringComparer.Ordinal).ToList();
        ids.Insert(0, Utc);
        return ids;
    }

    /// <summary>
    /// The zone of a valid IANA id, or null with the reason. Windows ids (which the system also resolves) are refused,
    /// so what is stored is always the IANA name a person and other software recognise.
    /// </summary>
    public static TimeZoneInfo? TryFind(string? id, out string? error)
    {
        error = null;
        if (string.IsNullOrWhiteSpace(id))
        {
            error = "Choose a time zone";
            return null;
        }
        id = id.Trim();
        if (id.Length > MaxLength)
        {
            error = $"The time zone must be at most {MaxLength} characters";
            return null;
        }
        if (id == Utc)
        {
            return TimeZoneInfo.Utc;
        }
        // Only names shaped like the zone database's (Area/Location): never a path the system would open, nor one of the
        // names it opens that are no place's zone (the machine's own "localtime", the "posix/" and "right/" copies of the
        // database, "Factory"). The database's aliases (US/Eastern, Asia/Calcutta) stay valid.
        if (!IanaName().IsMatch(id) || id is "localtime" or "posixrules" or "Factory"
            || id.StartsWith("posix/", StringComparison.Ordinal) || id.StartsWith("right/", StringComparison.Ordinal))
        {
            error = $"'{id}' is not a known time zone; use an IANA name such as Europe/Berlin or America/New_York";
            return null;
        }
        try
        {
            var zone = TimeZoneInfo.FindSystemTimeZoneById(id);
            if (zone.HasIanaId)
            {
                return zone;
            }
        }
        catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException or ArgumentException or IOException
                                       or UnauthorizedAccessException or System.Security.SecurityException)
        {
            // A name the system cannot read as a zone (a folder such as "America", a path): not a time zone.
        }
        error = $"'{id}' is not a known time zone; use an IANA name such as Europe/Berlin or America/New_York";
        return null;
    }

    /// <summary>The zone of a stored id; UTC for one this system does not know (a database moved between machines).</summary>
    public static TimeZoneInfo Find(string? id) =>
        string.IsNullOrEmpty(id) || id == Utc ? TimeZoneInfo.Utc : Cache.GetOrAdd(id, static i => TryFind(Copied(i), out _) ?? TimeZoneInfo.Utc);

    // The zone database's copies under posix/ and right/ were accepted until 2026-12-07 and may be stored: each reads as
    // the zone it copies (right/'s leap seconds aside, the same wall clock).
    private static string Copied(string id) =>
        id.StartsWith("posix/", StringComparison.Ordinal) || id.StartsWith("right/", StringComparison.Ordinal) ? id[6..] : id;

    /// <summary>A gym's zone, read from its row.</summary>
    public static async Task<TimeZoneInfo> OfGymAsync(GymwireDbContext db, Guid gymId, CancellationToken ct) =>
        Find(await db.Gyms.AsNoTracking().Where(g => g.Id == gymId).Select(g => g.TimeZone).FirstOrDefaultAsync(ct));

    public static DateTime ToLocal(DateTime utc, TimeZoneInfo zone) =>
        TimeZoneInfo.ConvertTimeFromUtc(DateTime.SpecifyKind(utc, DateTimeKind.Utc), zone);

    public static DateOnly LocalDate(DateTime utc, TimeZoneInfo zone) => DateOnly.FromDateTime(ToLocal(utc, zone));

    /// <summary>
    /// The UTC instant a local day starts. Where midnight does not exist (clocks jump forward at midnight) the day starts
    /// at the first local time after the gap; where it occurs twice, at the first of them.
    /// </summary>
    public static DateTime StartOfDayUtc(DateOnly day, TimeZoneInfo zone) => ToUtc(day.ToDateTime(TimeOnly.MinValue), zone);

    /// <summary>A local wall-clock time as UTC: a time in a gap moves to the gap's end, an ambiguous one is the earlier instant.</summary>
    public static DateTime ToUtc(DateTime local, TimeZoneInfo zone)
    {
        local = DateTime.SpecifyKind(local, DateTimeKind.Unspecified);
        if (zone.IsAmbiguousTime(local))
        {
            var offset = zone.GetAmbiguousTimeOffsets(local).Max();
            return DateTime.SpecifyKind(local - offset, DateTimeKind.Utc);
        }
        // Gaps are whole minutes in every zone; walk forward to the first valid minute.
        var valid = local;
        while (zone.IsInvalidTime(valid))
        {
            valid = valid.AddMinutes(1);
        }
        if (valid != local)
        {
            valid = new DateTime(valid.Year, valid.Month, valid.Day, valid.Hour, valid.Minute, 0, DateTimeKind.Unspecified);
        }
        try
        {
            return TimeZoneInfo.ConvertTimeToUtc(valid, zone);
        }
        catch (ArgumentException)
        {
            // The first or last representable day in a zone ahead of or behind UTC: clamp to the range's end.
            return DateTime.SpecifyKind(valid.Year == 1 ? DateTime.MinValue : DateTime.MaxValue, DateTimeKind.Utc);
        }
    }

    /// <summary>"2026-03-08 23:30:00 America/New_York" (or "… UTC"): the full time, with the zone named.</summary>
    public static string Format(DateTime utc, TimeZoneInfo zone) =>
        ToLocal(utc, zone).ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " " + Name(zone);

    /// <summary>"2026-03-08 23:30 America/New_York": for status lines.</summary>
    public static string Minutes(DateTime utc, TimeZoneInfo zone) =>
        ToLocal(utc, zone).ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) + " " + Name(zone);

    [System.Text.RegularExpressions.GeneratedRegex("^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$")]
    private static partial System.Text.RegularExpressions.Regex IanaName();

    /// <summary>The zone's id as the owner chose it; "UTC" for UTC.</summary>
    public static string Name(TimeZoneInfo zone) => zone == TimeZoneInfo.Utc || zone.Id is "Etc/UTC" or "UTC" ? Utc : zone.Id;
}
