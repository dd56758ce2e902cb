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

/// <summary>A gym's scheduled accounting report: the CSV exports of each past period, emailed to the owners.</summary>
public sealed class ReportSchedule
{
    public Guid GymId { get; set; }
    /// <summary><c>daily</c>, <c>weekly</c> (periods start Monday) or <c>monthly</c>; UTC.</summary>
    public required string Frequency { get; set; }
    /// <summary>The end of the last period reported (a period boundary); the next report covers the period after it.</summary>
    public DateTime ReportedThrough { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? LastSentAt { get; set; }
    public DateTime? LastFailureAt { get; set; }
    public string? LastFailure { get; set; }
}

public static class ReportFrequencies
{
    public const string Daily = "daily";
    public const string Weekly = "weekly";
    public const string Monthly = "monthly";
    public static readonly string[] All = [Daily, Weekly, Monthly];

    /// <summary>The start of the period that contains <paramref name="at"/>.</summary>
    public static DateTime PeriodStart(string frequency, DateTime at)
    {
        var day = at.Date;
        return frequency switch
        {
            Weekly => day.AddDays(-(((int)day.DayOfWeek + 6) % 7)),
            Monthly => new DateTime(day.Year, day.Month, 1, 0, 0, 0, DateTimeKind.Utc),
            _ => day,
        };
    }

    public static DateTime Next(string frequency, DateTime periodStart) => frequency switch
    {
        Weekly => periodStart.AddDays(7),
        Monthly => periodStart.AddMonths(1),
        _ => periodStart.AddDays(1),
    };
}
