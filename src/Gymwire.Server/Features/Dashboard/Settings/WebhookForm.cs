using System.ComponentModel.DataAnnotations;

namespace Gymwire.Features.Dashboard.Settings;

public sealed class WebhookInput
{
    [Required(ErrorMessage = "Enter the endpoint URL.")]
    [StringLength(2048, ErrorMessage = "The URL must be at most 2048 characters.")]
    public string Url { get; set; } = "";

    /// <summary>The checked events: canonical names, and a GymPoint alias where the owner wants that name instead.</summary>
    public List<string> Events { get; set; } = [];

    /// <summary>"All events" (true) or "Only the events I choose" (false); checked events win over a stale "All events".</summary>
    public bool AllEvents { get; set; } = true;

    /// <summary>Optional: the owner's own secret (whsec_ + base64 of 24 to 64 bytes); otherwise Gymwire generates one.</summary>
    [StringLength(200)]
    public string? Secret { get; set; }

    /// <summary>Set by the second Save after the duplicate-URL warning.</summary>
    public bool ConfirmDuplicate { get; set; }

    /// <summary>
    /// The subscription's event list from the form: empty for all events; an alias checked under its event replaces
    /// the canonical name (the webhook then receives GymPoint's name). Null with an error when nothing is chosen.
    /// </summary>
    public List<string>? ChosenEvents(out string? error)
    {
        error = null;
        var picked = Events.Where(e => !string.IsNullOrEmpty(e)).Distinct(StringComparer.Ordinal).ToList();
        if (picked.Count == 0)
        {
            if (AllEvents)
            {
                return [];
            }
            error = "Choose at least one event, or All events.";
            return null;
        }
        var aliased = picked.Select(e => EventCatalog.ByName.GetValueOrDefault(e)?.AliasOf).OfType<string>().ToHashSet(StringComparer.Ordinal);
        return picked.Where(e => !aliased.Contains(e)).ToList();
    }

    /// <summary>
    /// The form's checked events for a stored list. A list naming both an event and its alias (possible through the API)
    /// is delivered under the event's own name, so the alias is shown unchecked: checked, saving the form would switch
    /// the webhook to the alias.
    /// </summary>
    public static List<string> CheckedFor(IReadOnlyCollection<string> stored) =>
        stored.Where(e => EventCatalog.ByName.GetValueOrDefault(e)?.AliasOf is not { } canonical || !stored.Contains(canonical)).ToList();

    /// <summary>
    /// The service words its errors for API clients ('url' …); on a form, name the field as the owner sees it. The
    /// refusal of http:// names the operator's setting, which the owner cannot change: say only what the server accepts.
    /// </summary>
    public static string Friendly(string error) =>
        error == WebhookService.HttpNotAllowed ? "This server accepts only https:// endpoints." : error.Replace("'url'", "The endpoint URL", StringComparison.Ordinal)
             .Replace("'events'", "Events", StringComparison.Ordinal)
             .Replace("'secret'", "The secret", StringComparison.Ordinal);
}

/// <summary>The event picker's layout: canonical events by category, each with the GymPoint names that stand for it.</summary>
public static class EventGroups
{
    public sealed record Choice(EventType Event, IReadOnlyList<EventType> Aliases);

    public sealed record Group(string Key, string Name, IReadOnlyList<Choice> Choices);

    public static IReadOnlyList<Group> All { get; } = EventCatalog.Canonical
        .GroupBy(e => Category(e.Name))
        .Select(g => new Group(g.Key.Key, g.Key.Name, g.Select(e => new Choice(e, EventCatalog.All.Where(a => a.AliasOf == e.Name).ToList())).ToList()))
        .ToList();

    private static (string Key, string Name) Category(string name) => name[..name.IndexOf('.')] switch
    {
        "member" => ("members", "Members"),
        "membership" => ("memberships", "Memberships"),
        "payment" => ("payments", "Payments"),
        "session" or "attendance" => ("training", "Training and attendance"),
        "class" => ("classes", "Classes"),
        "lead" => ("leads", "Leads"),
        "contract" => ("contracts", "Contracts"),
        var other => (other, other),
    };

    public static string Id(string eventName) => "event-" + eventName.Replace('.', '-').Replace('_', '-');
}

/// <summary>Another webhook of the gym that already sends to a URL (the same endpoint twice gets every event twice).</summary>
public static class DuplicateUrls
{
    public static Task<Guid?> FindAsync(GymwireDbContext db, Guid gymId, string url, Guid? except, CancellationToken ct)
    {
        var trimmed = url.Trim();
        return db.WebhookSubscriptions.AsNoTracking()
            .Where(s => s.GymId == gymId && s.Url == trimmed && (except == null || s.Id != except))
            .Select(s => (Guid?)s.Id).FirstOrDefaultAsync(ct);
    }
}
