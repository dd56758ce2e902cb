namespace Gymwire.Features.Dashboard.Settings;

/// <summary>How the webhook pages word statuses, times and schedules.</summary>
public static class WebhookViews
{
    /// <summary>A test send slower than this is flagged: receivers should answer at once and work afterwards.</summary>
    public const int SlowTestMs = 5000;

    public static string Seconds(int ms) => (ms / 1000.0).ToString("0.0", CultureInfo.InvariantCulture);

    /// <summary>A time in UTC, named. Pages show times in the gym's zone with <see cref="GymTime.Time"/>.</summary>
    public static string Time(DateTime t) => t.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " UTC";

    public static string Events(IReadOnlyCollection<string> events) => events.Count == 0 ? "All events" : string.Join(", ", events);

    /// <summary>
    /// The badge of a webhook's state (<see cref="WebhookStates"/>): the same words in the list, on its page and on the
    /// tile. A disabled one says who switched it off when it was Gymwire (its reason says why) or the owner (whose
    /// switch-off the key that created the webhook cannot undo); plain "Disabled" is the key's own switch-off.
    /// </summary>
    public static (string Css, string Text) Status(WebhookState state, bool disabledByGymwire = false, bool disabledByOwner = false) => state switch
    {
        WebhookState.Active => ("connected", "Active"),
        WebhookState.Failing => ("error", "Failing"),
        _ when disabledByGymwire => ("error", "Disabled by Gymwire"),
        _ when disabledByOwner => ("not-connected", "Disabled by owner"),
        _ => ("not-connected", "Disabled"),
    };

    public static (string Css, string Text) Status(WebhookSubscription hook) =>
        Status(WebhookStates.Of(hook), hook.DisabledReason is not null, hook.SwitchedOffByOwner);

    /// <summary>"just now", "5 min ago", "3 h ago", "2 d ago" (or "in 5 min"); the full time goes in the title.</summary>
    public static string Relative(DateTime t, DateTime now)
    {
        var span = now - t;
        var future = span < TimeSpan.Zero;
        span = span.Duration();
        var text = span.TotalSeconds < 45 ? null
            : span.TotalMinutes < 60 ? $"{Math.Max(1, (int)Math.Round(span.TotalMinutes))} min"
            : span.TotalHours < 24 ? $"{(int)span.TotalHours} h"
            : $"{(int)span.TotalDays} d";
        return text is null ? "just now" : future ? $"in {text}" : $"{text} ago";
    }

    /// <summary>"98.5%" (one decimal only below 100), or an en dash when there is nothing to rate.</summary>
    public static string Percent(double? rate) => rate switch
    {
        null => "–",
        1 => "100%",
        { } r => (Math.Floor(r * 1000) / 10).ToString("0.#", CultureInfo.InvariantCulture) + "%",
    };

    public static string Milliseconds(int? ms) => ms is { } v ? v.ToString("#,0", CultureInfo.InvariantCulture) + " ms" : "–";

    public static (string Css, string Text) DeliveryStatusBadge(string status) => status switch
    {
        DeliveryStatus.Delivered => ("connected", "Delivered"),
        DeliveryStatus.Retrying => ("error", "Retrying"),
        DeliveryStatus.Undeliverable => ("error", "Undeliverable"),
        // Not attempted yet: sent in a moment, or waiting while its endpoint is paused or answers one at a time.
        _ => ("not-connected", "Queued"),
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
