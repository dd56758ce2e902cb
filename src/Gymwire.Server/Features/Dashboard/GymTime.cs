using Microsoft.AspNetCore.Mvc.Filters;

namespace Gymwire.Features.Dashboard;

/// <summary>
/// The signed-in gym's name and time zone for one dashboard request (loaded once by <see cref="GymTimeFilter"/>):
/// every time a page shows is in the gym's zone; the HTML keeps the UTC instant in <c>&lt;time datetime&gt;</c>.
/// </summary>
public sealed class GymTime
{
    public TimeZoneInfo Zone { get; private set; } = TimeZoneInfo.Utc;

    public string? GymName { get; private set; }

    /// <summary>The zone as the owner chose it ("Europe/Berlin"; "UTC").</summary>
    public string ZoneName => GymTimeZones.Name(Zone);

    /// <summary>"2026-03-08 23:30:00 America/New_York".</summary>
    public string Time(DateTime utc) => GymTimeZones.Format(utc, Zone);

    /// <summary>"2026-03-08 23:30 America/New_York".</summary>
    public string Minutes(DateTime utc) => Local(utc).ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) + " " + ZoneName;

    public DateTime Local(DateTime utc) => GymTimeZones.ToLocal(utc, Zone);

    public DateOnly Today(TimeProvider clock) => GymTimeZones.LocalDate(clock.GetUtcNow().UtcDateTime, Zone);

    public async Task LoadAsync(GymwireDbContext db, Guid gymId, CancellationToken ct)
    {
        var gym = await db.Gyms.AsNoTracking().Where(g => g.Id == gymId).Select(g => new { g.Name, g.TimeZone }).FirstOrDefaultAsync(ct);
        GymName = gym?.Name;
        Zone = GymTimeZones.Find(gym?.TimeZone);
    }
}

/// <summary>Loads <see cref="GymTime"/> before a signed-in owner's page handler runs.</summary>
internal sealed class GymTimeFilter : IAsyncPageFilter
{
    public Task OnPageHandlerSelectionAsync(PageHandlerSelectedContext context) => Task.CompletedTask;

    public async Task OnPageHandlerExecutionAsync(PageHandlerExecutingContext context, PageHandlerExecutionDelegate next)
    {
        var http = context.HttpContext;
        if (http.User.IsOwner())
        {
            await http.RequestServices.GetRequiredService<GymTime>()
                .LoadAsync(http.RequestServices.GetRequiredService<GymwireDbContext>(), http.User.GetGymId(), http.RequestAborted);
        }
        await next();
    }
}
