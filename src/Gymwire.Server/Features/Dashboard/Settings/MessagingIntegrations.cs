using Gymwire.Features.Dashboard.Integrations;
using Gymwire.Features.Email;
using Gymwire.Features.Sms;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>
/// SMS: a server-level connector. The page says in plain words whether this server sends text messages, what the
/// owner can do, and the gym's last messages with their outcome; never a configuration key or credential.
/// </summary>
public sealed class SmsIntegrationModel(GymwireDbContext db, IOptions<SmsOptions> options, IntegrationTiles tiles) : PageModel
{
    public sealed record Row(DateTime CreatedAt, string To, string Message, string Status, string? Error, DateTime? SentAt);

    /// <summary><c>twilio</c>, <c>log</c>, or empty (no provider).</summary>
    public string Provider => options.Value.Provider;

    public int Queued { get; private set; }

    public IReadOnlyList<Row> Messages { get; private set; } = [];

    /// <summary>The SMS tile's status on Settings → Integrations, so the page and the tile never disagree.</summary>
    public IntegrationStatus Status { get; private set; } = null!;

    public async Task OnGetAsync(CancellationToken ct)
    {
        var gymId = User.GetGymId();
        Status = await TileStatus.OfAsync(tiles, "sms", gymId, ct);
        Queued = await db.SmsMessages.CountAsync(m => m.GymId == gymId && m.Status == SmsStatuses.Queued, ct);
        var rows = await db.SmsMessages.AsNoTracking().Where(m => m.GymId == gymId).OrderByDescending(m => m.CreatedAt).ThenByDescending(m => m.Id).Take(10)
            .Select(m => new { m.CreatedAt, m.Phone, m.Message, m.Status, m.Error, m.SentAt }).ToListAsync(ct);
        Messages = rows.Select(m => new Row(m.CreatedAt, SmsLog.MaskPhone(m.Phone), WebhookViews.Excerpt(m.Message, 80), m.Status, m.Error, m.SentAt)).ToList();
    }

    public static string StatusCss(string status) => status switch
    {
        SmsStatuses.Sent or SmsStatuses.Delivered => "connected",
        SmsStatuses.Failed or SmsStatuses.Undelivered => "error",
        _ => "not-connected",
    };
}

/// <summary>Email: server-level, like SMS. Whether this server sends email, what it sends the owner, and the last emails.</summary>
public sealed class EmailIntegrationModel(GymwireDbContext db, IEmailSender sender, IntegrationTiles tiles) : PageModel
{
    public bool Configured => sender.IsConfigured;

    public IReadOnlyList<EmailDelivery> Emails { get; private set; } = [];

    /// <summary>The Email tile's status on Settings → Integrations, so the page and the tile never disagree.</summary>
    public IntegrationStatus Status { get; private set; } = null!;

    public async Task OnGetAsync(CancellationToken ct)
    {
        var gymId = User.GetGymId();
        Status = await TileStatus.OfAsync(tiles, "email", gymId, ct);
        Emails = await db.EmailDeliveries.AsNoTracking().Where(d => d.GymId == gymId).OrderByDescending(d => d.CreatedAt).ThenByDescending(d => d.Id)
            .Take(10).ToListAsync(ct);
    }
}

/// <summary>An integration page's badge and reason: its tile's, read the way Settings → Integrations reads it.</summary>
internal static class TileStatus
{
    public static async Task<IntegrationStatus> OfAsync(IntegrationTiles tiles, string key, Guid gymId, CancellationToken ct) =>
        tiles.Find(key) is { } provider
            ? await tiles.StatusAsync(provider, gymId, ct)
            : IntegrationStatus.NotConnected("Not set up on this server.");
}
