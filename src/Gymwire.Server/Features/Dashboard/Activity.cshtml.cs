using Gymwire.Data;
using Gymwire.Features.Events;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Features.Dashboard;

public sealed record ActivityRow(long Sequence, string Type, DateTime OccurredAt, string Summary);

/// <summary>The gym's outbox, newest first, a page at a time (keyset on the sequence, so paging stays cheap).</summary>
public sealed class ActivityModel(GymwireDbContext db) : PageModel
{
    public const int PageSize = 25;
    private const int SummaryLength = 160;

    [BindProperty(SupportsGet = true)]
    public long? Before { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? Type { get; set; }

    public IReadOnlyList<ActivityRow> Events { get; private set; } = [];

    /// <summary>The <c>before</c> value of the next (older) page, or null on the last page.</summary>
    public long? OlderThan { get; private set; }

    public async Task OnGetAsync(CancellationToken ct)
    {
        var gymId = User.GetGymId();
        var query = db.OutboxEvents.AsNoTracking().Where(e => e.GymId == gymId);
        if (Type is { Length: > 0 } type && EventCatalog.ByName.TryGetValue(type, out var eventType))
        {
            Type = eventType.Canonical;
            query = query.Where(e => e.Type == eventType.Canonical);
        }
        else
        {
            Type = null;
        }
        if (Before is { } before)
        {
            query = query.Where(e => e.Sequence < before);
        }
        var rows = await query.OrderByDescending(e => e.Sequence).Take(PageSize + 1)
            .Select(e => new { e.Sequence, e.Type, e.OccurredAt, e.Data })
            .ToListAsync(ct);
        Events = rows.Take(PageSize).Select(e => new ActivityRow(e.Sequence, e.Type, e.OccurredAt, Summarize(e.Data))).ToList();
        OlderThan = rows.Count > PageSize ? Events[^1].Sequence : null;
    }

    public string PageUrl(long? before)
    {
        var query = new Dictionary<string, string?>(StringComparer.Ordinal);
        if (Type is not null)
        {
            query["type"] = Type;
        }
        if (before is not null)
        {
            query["before"] = before.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return QueryHelpers.AddQueryString("/activity", query);
    }

    private static string Summarize(string json) => json.Length <= SummaryLength ? json : json[..SummaryLength] + "…";
}
