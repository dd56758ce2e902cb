using System.Globalization;
using Gymwire.Features.Webhooks;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>How the webhook pages word statuses, times and schedules.</summary>
public static class WebhookViews
{
    /// <summary>A test send slower than this is flagged: receivers should answer at once and work afterwards.</summary>
    public const int SlowTestMs = 5000;

    public static string Seconds(int ms) => (ms / 1000.0).ToString("0.0", CultureInfo.InvariantCulture);

    public static string Time(DateTime t) => t.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " UTC";

    public static string Events(IReadOnlyCollection<string> events) => events.Count == 0 ? "All events" : string.Join(", ", events);

    public static (string Css, string Text) Status(WebhookDto hook) =>
        hook.IsActive ? ("connected", "Active")
        : hook.DisabledReason is not null ? ("error", "Disabled by Gymwire")
        : ("not-connected", "Disabled");

    public static (string Css, string Text) DeliveryStatusBadge(string status) => status switch
    {
        DeliveryStatus.Delivered => ("connected", "Delivered"),
        DeliveryStatus.Retrying => ("error", "Retrying"),
        DeliveryStatus.Undeliverable => ("error", "Undeliverable"),
        _ => ("not-connected", "Pending"),
    };

    /// <summary>"5 minutes", "2 hours", "1 day 6 hours".</summary>
    public static string Duration(TimeSpan span)
    {
        var parts = new List<string>();
        void Add(int n, string unit)
        {
            if (n > 0)
            {
                parts.Add(n == 1 ? $"1 {unit}" : $"{n} {unit}s");
            }
        }
        Add(span.Days, "day");
        Add(span.Hours, "hour");
        Add(span.Minutes, "minute");
        Add(span.Seconds, "second");
        return parts.Count == 0 ? "0 seconds" : string.Join(" ", parts);
    }

    /// <summary>"5 minutes, 30 minutes and 2 hours".</summary>
    public static string Schedule(IReadOnlyList<TimeSpan> delays)
    {
        var words = delays.Select(Duration).ToList();
        return words.Count switch
        {
            0 => "",
            1 => words[0],
            _ => string.Join(", ", words.Take(words.Count - 1)) + " and " + words[^1],
        };
    }

    public static string Excerpt(string? text, int length = 200) =>
        text is null ? "" : text.Length <= length ? text : text[..length] + "…";
}
