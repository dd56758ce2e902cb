using System.Net;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

/// <summary>
/// Issue #30, "Done when": every dashboard page, signed in and signed out, at desktop and phone size, light and dark,
/// has no serious or critical axe-core violation and no horizontal scroll, with a screenshot of each under the test
/// output; and no table row has a cell that is not laid out as a table cell (its bottom border would break). The pages
/// carry data (a key, a webhook with a delivered and a failing delivery, members and a payment), so the elements that
/// only show with data are checked too. The flows themselves are the other classes' tests.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class EveryPageTests(Chromium chromium, WebhookGymwire fx) : IClassFixture<WebhookGymwire>
{
    // "/" is a redirect to /settings/integrations, and /setup one to /login once a gym exists (FirstRunTests covers it).
    [Fact]
    public async Task Every_page_is_accessible_and_fits_on_desktop_and_phone_in_light_and_dark()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/ok", new Reply(200, "ok"));
        receiver.On("/down", new Reply(503, "down"));
        var gym = await fx.CreateGymAsync("Every Page Academy");
        Guid keyId, okHook, downHook;
        using (var owner = gym.Owner())
        {
            var key = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Zapier", scope = "write" })).AssertStatusAsync(HttpStatusCode.Created);
            keyId = key.GetProperty("id").GetGuid();
            okHook = await CreateHookAsync(owner, receiver.Url("/ok"), "CRM");
            downHook = await CreateHookAsync(owner, receiver.Url("/down"), "Newsletter");
            await (await owner.PostJsonAsync("/api/gym/members", new { name = "Ana Silva", user_id = "user_ana" })).AssertStatusAsync(HttpStatusCode.Created);
            await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_ana", amount_cents = 4900 })).AssertStatusAsync(HttpStatusCode.Created);
        }
        var delivery = await WaitForDeliveryAsync(okHook, d => d.Status == DeliveryStatus.Delivered);
        await WaitForDeliveryAsync(downHook, d => d.Status == DeliveryStatus.Retrying);

        string[] signedIn =
        [
            "/settings/integrations", "/settings/integrations/payments", "/settings/integrations/accounting",
            "/settings/integrations/sms", "/settings/integrations/email", "/settings/integrations/automation",
            "/settings/api-keys", "/settings/api-keys/new", $"/settings/api-keys/{keyId}/revoke",
            "/settings/webhooks", "/settings/webhooks/new", $"/settings/webhooks/{okHook}", $"/settings/webhooks/{downHook}",
            $"/settings/webhooks/{okHook}/edit", $"/settings/webhooks/{okHook}/disable", $"/settings/webhooks/{okHook}/rotate-secret",
            $"/settings/webhooks/{okHook}/delete", $"/settings/webhooks/{okHook}/deliveries/{delivery.Id}",
            "/activity", "/exports", "/settings/gym", "/settings/security",
        ];
        string[] signedOut = ["/login", "/forgot-password"];
        // Pages whose answer is an error status by design (the browser logs it as a console error, which AssertClean counts).
        (string Path, int Status)[] errorPages = [("/reset-password?token=not-a-token", 400), ("/no-such-page", 404)];

        foreach (var (width, height, size) in new[] { (1280, 800, "desktop"), (375, 812, "phone") })
        {
            await using (var anonymous = await DashboardPage.OpenAsync(chromium, fx, width, height))
            {
                foreach (var path in signedOut)
                {
                    await CheckAsync(anonymous, path, $"every-{size}-signed-out");
                }
                anonymous.AssertClean();
            }
            await using (var errors = await DashboardPage.OpenAsync(chromium, fx, width, height))
            {
                foreach (var (path, status) in errorPages)
                {
                    await CheckAsync(errors, path, $"every-{size}-signed-out", status);
                }
            }
            await using var browser = await DashboardPage.OpenAsync(chromium, fx, width, height);
            await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
            foreach (var path in signedIn)
            {
                await CheckAsync(browser, path, $"every-{size}");
            }
            browser.AssertClean();
        }
    }

    private readonly HashSet<string> _shots = [];

    private async Task CheckAsync(DashboardPage browser, string path, string prefix, int status = 200)
    {
        var response = await browser.Page.GotoAsync(path);
        Assert.Equal(status, response!.Status);
        // The page itself, not a redirect to the login page or elsewhere.
        Assert.Equal(path.Split('?')[0], new Uri(browser.Page.Url).AbsolutePath);
        var widths = await browser.Page.EvaluateAsync<int[]>("[document.documentElement.scrollWidth, window.innerWidth]");
        Assert.True(widths[0] <= widths[1], $"{path}: {widths[0]}px wide in a {widths[1]}px viewport");
        // A page can fit and still have a badge or a label run over its box's border (a text wider than its column).
        var overflowing = await browser.Page.EvaluateAsync<string[]>(OverflowingLabels);
        Assert.True(overflowing.Length == 0, $"{path} at {widths[1]}px: {string.Join("; ", overflowing)}");
        // A cell with a display of its own (flex, say) in a table laid out as a table stops being a cell: the row's border breaks under it.
        var notCells = await browser.Page.EvaluateAsync<string[]>(CellsThatAreNotCells);
        Assert.True(notCells.Length == 0, $"{path} at {widths[1]}px: {string.Join("; ", notCells)}");
        var name = string.Join('-', path.Split('?')[0].Trim('/').Split('/').Select(s => Guid.TryParse(s, out _) ? "id" : s));
        // Two webhook pages (a delivering and a failing one) share a name: the second gets "-2".
        name = _shots.Add($"{prefix}-{name}") ? name : name + "-2";
        await Accessibility.CheckAsync(browser, $"{prefix}-{name}");
    }

    /// <summary>
    /// Badges and the health panel's labels and figures whose box or text reaches past the inside of the border of the
    /// box around them (a stats box, card, tile or alert): "text in box".
    /// </summary>
    private const string OverflowingLabels = """
        () => [...document.querySelectorAll('.badge, .stat dt, .stat dd')].flatMap(el => {
          const box = el.parentElement.closest('.stats, .card, .tile, .alert');
          if (!box || el.getClientRects().length === 0) return [];
          const text = document.createRange();
          text.selectNodeContents(el);
          const outer = box.getBoundingClientRect(), style = getComputedStyle(box);
          const left = outer.left + parseFloat(style.borderLeftWidth), right = outer.right - parseFloat(style.borderRightWidth);
          const out = [el.getBoundingClientRect(), text.getBoundingClientRect()].some(r => r.width > 0 && (r.left < left - 0.5 || r.right > right + 0.5));
          return out ? [`"${el.textContent.trim()}" in .${box.className.split(' ').join('.')}`] : [];
        })
        """;

    /// <summary>The cells of every table row laid out as a table row (not as a phone's stacked block) that are not table cells.</summary>
    private const string CellsThatAreNotCells = """
        () => [...document.querySelectorAll('tr')].filter(tr => getComputedStyle(tr).display === 'table-row').flatMap(tr =>
          [...tr.children].map(cell => [cell, getComputedStyle(cell).display]).filter(([, display]) => display !== 'table-cell' && display !== 'none')
            .map(([cell, display]) => `${cell.tagName.toLowerCase()} "${cell.dataset.label ?? cell.textContent.trim()}" in table.${cell.closest('table').className.split(' ').join('.')} is display: ${display}`))
        """;

    private static async Task<Guid> CreateHookAsync(HttpClient owner, string url, string description)
    {
        var created = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url, events = new[] { "member.joined", "payment.received" }, description }))
            .AssertStatusAsync(HttpStatusCode.Created);
        return created.GetProperty("id").GetGuid();
    }

    private async Task<WebhookDelivery> WaitForDeliveryAsync(Guid subscriptionId, Func<WebhookDelivery, bool> condition)
    {
        WebhookDelivery? found = null;
        await Eventually.TrueAsync(async () =>
        {
            var rows = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => d.SubscriptionId == subscriptionId).ToListAsync());
            return (found = rows.FirstOrDefault(condition)) is not null;
        }, what: "a delivery");
        return found!;
    }
}
