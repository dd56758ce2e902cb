using System.Net;
using System.Text.RegularExpressions;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

/// <summary>
/// Issue #30, "Health, at a glance" and "Every delivery inspectable": the Failing state in the list, on the webhook's
/// page, on the Integrations tile and in the banner; the health panel; the delivery page; "Retry all failed since …";
/// the Activity page. Against a real Gymwire and a real local receiver, checked by axe-core light and dark.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class DeliveryHealthTests(Chromium chromium, WebhookGymwire fx) : IClassFixture<WebhookGymwire>
{
    private async Task<Guid> CreateHookAsync(TestGym gym, string url, string? description = null)
    {
        using var owner = gym.Owner();
        var created = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url, events = new[] { "member.joined", "payment.received" }, description }))
            .AssertStatusAsync(HttpStatusCode.Created);
        return created.GetProperty("id").GetGuid();
    }

    private static async Task AddMemberAsync(TestGym gym, string name, string userId)
    {
        using var owner = gym.Owner();
        await (await owner.PostJsonAsync("/api/gym/members", new { name, user_id = userId })).AssertStatusAsync(HttpStatusCode.Created);
    }

    private async Task<WebhookDelivery> WaitForDeliveryAsync(Guid subscriptionId, Func<WebhookDelivery, bool> condition)
    {
        WebhookDelivery? found = null;
        await Eventually.TrueAsync(async () =>
        {
            var rows = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => d.SubscriptionId == subscriptionId).ToListAsync());
            return (found = rows.FirstOrDefault(condition)) is not null;
        }, what: "a delivery in the expected state");
        return found!;
    }

    [Fact]
    public async Task Failing_endpoint_shows_Failing_in_list_page_tile_and_banner_then_retry_all_failed_delivers_to_the_healed_receiver()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var healed = false;
        receiver.On("/crm", _ => healed ? new Reply(200, "ok") : new Reply(503, "maintenance"));
        var gym = await fx.CreateGymAsync("Failing Academy");
        var hookId = await CreateHookAsync(gym, receiver.Url("/crm"), "CRM sync");
        await AddMemberAsync(gym, "Dana Reyes", "user_dana");
        await WaitForDeliveryAsync(hookId, d => d.Status == DeliveryStatus.Retrying);

        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);

        // The tile names the failing webhook and links to it; the banner shows on every page.
        var tile = page.GetByRole(AriaRole.Listitem, new() { Name = "Zapier / Make webhooks", Exact = true });
        await Assertions.Expect(tile.Locator(".badge")).ToHaveTextAsync("Error");
        await Assertions.Expect(page.Locator("#failing-banner")).ToContainTextAsync("1 webhook failing");
        await browser.ScreenshotAsync("40-integrations-failing-tile");
        await tile.GetByRole(AriaRole.Link, new() { Name = "Failing: CRM sync" }).ClickAsync();
        await browser.ExpectPathAsync($"/settings/webhooks/{hookId}");
        await Assertions.Expect(page.Locator("#webhook-status")).ToHaveTextAsync("Failing");
        await Assertions.Expect(page.Locator("#failing-reason")).ToContainTextAsync("every attempt since");
        await Assertions.Expect(page.Locator("#health-hook-day [data-stat=retrying]")).ToHaveTextAsync("1");
        await Assertions.Expect(page.Locator("#health-hook-day .rate")).ToHaveTextAsync("0%");
        var row = page.Locator("table.deliveries tbody tr");
        await Assertions.Expect(row).ToHaveCountAsync(1);
        await Assertions.Expect(row.Locator(".summary")).ToHaveTextAsync("Dana Reyes");
        await Assertions.Expect(row.Locator("td[data-label=Status]")).ToHaveTextAsync("Retrying");
        await Assertions.Expect(page.Locator("svg#health-hook-hours rect.retrying")).ToHaveCountAsync(1);
        await browser.AssertAccessibleAsync("41-webhook-failing");

        // The list says the same, with the last delivery and the 24-hour success rate.
        await page.GotoAsync("/settings/webhooks");
        var listed = page.Locator($"tr[data-webhook-id='{hookId}']");
        await Assertions.Expect(listed.Locator("td[data-label=Status]")).ToHaveTextAsync("Failing");
        await Assertions.Expect(listed.Locator("td[data-label=Webhook]")).ToContainTextAsync("CRM sync");
        await Assertions.Expect(listed.Locator(".outcome.failed")).ToContainTextAsync("just now");
        await Assertions.Expect(listed.Locator(".rate")).ToContainTextAsync("0%");
        await Assertions.Expect(page.Locator("#health-all")).ToBeVisibleAsync();
        await browser.AssertAccessibleAsync("42-webhooks-list-failing");

        // The endpoint is back: "Retry all failed since …" sends it again, and the page follows it to Delivered without a reload.
        healed = true;
        await page.GotoAsync($"/settings/webhooks/{hookId}");
        await page.GetByRole(AriaRole.Button, new() { Name = "Retry all failed" }).ClickAsync();
        await Assertions.Expect(page.Locator("#retried")).ToHaveTextAsync("1 failed delivery is being sent again.");
        await Assertions.Expect(row.Locator("td[data-label=Status]")).ToHaveTextAsync("Delivered");
        await Assertions.Expect(row.GetByRole(AriaRole.Button, new() { NameRegex = new Regex("^Redeliver") })).ToBeVisibleAsync();
        var requests = receiver.At("/crm");
        Assert.Equal(2, requests.Count);
        Assert.Single(requests.Select(r => r.Header("webhook-id")).Distinct());
        await page.ReloadAsync();
        await Assertions.Expect(page.Locator("#webhook-status")).ToHaveTextAsync("Active");
        await Assertions.Expect(page.Locator("#failing-banner")).ToHaveCountAsync(0);
        await browser.ScreenshotAsync("43-webhook-recovered");
        browser.AssertClean();
    }

    [Fact]
    public async Task Delivery_page_shows_the_signed_request_and_every_attempt_and_a_redelivery_refreshes_in_place()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/flaky", n => n == 1 ? new Reply(503, "try later") : new Reply(200, """{"received":true}"""));
        var gym = await fx.CreateGymAsync("Inspect Academy");
        var hookId = await CreateHookAsync(gym, receiver.Url("/flaky"));
        await AddMemberAsync(gym, "Ana Silva", "user_ana");
        var first = await WaitForDeliveryAsync(hookId, d => d.Status == DeliveryStatus.Retrying);
        fx.Clock.Advance(fx.Services.GetRequiredService<IOptions<WebhookOptions>>().Value.EffectiveRetrySchedule[0]);
        fx.Services.GetRequiredService<DeliverySignal>().Notify();
        await WaitForDeliveryAsync(hookId, d => d.Status == DeliveryStatus.Delivered);

        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        await page.GotoAsync($"/settings/webhooks/{hookId}");
        var details = page.Locator("table.deliveries tbody tr").GetByRole(AriaRole.Link, new() { NameRegex = new Regex("^Details") });
        await Assertions.Expect(details).ToHaveAttributeAsync("href", $"/settings/webhooks/{hookId}/deliveries/{first.Id}");
        await page.GotoAsync($"/settings/webhooks/{hookId}/deliveries/{first.Id}");

        // The request as the receiver got it at the latest attempt: the signature headers match byte for byte.
        var sent = receiver.At("/flaky")[^1];
        var headers = page.Locator("#request-headers");
        foreach (var name in new[] { "X-CombatScore-Signature", "X-CombatScore-Event", "webhook-id", "webhook-timestamp", "webhook-signature" })
        {
            await Assertions.Expect(headers.Locator("div").Filter(new() { Has = page.GetByText(name, new() { Exact = true }) }).Locator("dd"))
                .ToHaveTextAsync(sent.Header(name)!);
        }
        await Assertions.Expect(page.Locator("#request-payload")).ToContainTextAsync("\"user_id\": \"user_ana\"");
        await Assertions.Expect(page.Locator("#delivery-summary")).ToHaveTextAsync("Ana Silva");
        var attempts = page.Locator("#attempts > li");
        await Assertions.Expect(attempts).ToHaveCountAsync(2);
        await Assertions.Expect(attempts.Nth(0)).ToContainTextAsync("#2 · Scheduled retry");
        await Assertions.Expect(attempts.Nth(0)).ToContainTextAsync("{\"received\":true}");
        await Assertions.Expect(attempts.Nth(1)).ToContainTextAsync("#1 · Initial attempt");
        await Assertions.Expect(attempts.Nth(1).Locator(".badge")).ToHaveTextAsync("503");
        await Assertions.Expect(attempts.Nth(1)).ToContainTextAsync("try later");
        await browser.AssertAccessibleAsync("44-delivery");

        // Redeliver: "Sending…", then its outcome, without a manual reload.
        await page.GetByRole(AriaRole.Button, new() { Name = "Redeliver" }).ClickAsync();
        await Assertions.Expect(attempts).ToHaveCountAsync(3);
        await Assertions.Expect(attempts.Nth(0)).ToContainTextAsync("#3 · Redelivery");
        await Assertions.Expect(page.Locator("#delivery-status .badge")).ToHaveTextAsync("Delivered");
        browser.AssertClean();

        await using var phone = await DashboardPage.OpenAsync(chromium, fx, width: 375, height: 812);
        await phone.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        foreach (var (path, shot) in new[]
        {
            ($"/settings/webhooks/{hookId}/deliveries/{first.Id}", "45-phone-delivery"),
            ($"/settings/webhooks/{hookId}", "46-phone-webhook-health"),
            ("/settings/webhooks", "47-phone-webhooks-list"),
            ("/activity", "48-phone-activity"),
        })
        {
            await phone.Page.GotoAsync(path);
            var widths = await phone.Page.EvaluateAsync<int[]>("[document.documentElement.scrollWidth, window.innerWidth]");
            Assert.True(widths[0] <= widths[1], $"{path} is {widths[0]}px wide in a {widths[1]}px viewport");
            await phone.AssertAccessibleAsync(shot);
        }
        phone.AssertClean();
    }

    [Fact]
    public async Task Activity_shows_member_names_filters_by_date_and_links_each_event_to_its_deliveries()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/ok", new Reply(200, "ok"));
        var gym = await fx.CreateGymAsync("Activity Academy");
        var hookId = await CreateHookAsync(gym, receiver.Url("/ok"), "Newsletter");
        await AddMemberAsync(gym, "Bruno Costa", "user_bruno");
        using (var owner = gym.Owner())
        {
            await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_bruno", amount_cents = 9900 })).AssertStatusAsync(HttpStatusCode.Created);
        }
        await Eventually.TrueAsync(async () => (await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.SubscriptionId == hookId && d.Status == DeliveryStatus.Delivered))) == 2,
            what: "both deliveries");

        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        await page.GotoAsync("/activity");
        var rows = page.Locator("table.events tbody tr");
        await Assertions.Expect(rows).ToHaveCountAsync(2);
        await Assertions.Expect(rows.Nth(0).Locator(".summary")).ToHaveTextAsync(new Regex("^Bruno Costa · 99\\.00"));
        await Assertions.Expect(rows.Nth(1).Locator(".summary")).ToHaveTextAsync("Bruno Costa");
        await Assertions.Expect(rows.Nth(0).Locator("time")).ToHaveAttributeAsync("title", new Regex("UTC$"));
        await browser.AssertAccessibleAsync("49-activity");

        await rows.Nth(1).GetByRole(AriaRole.Link, new() { Name = "Newsletter" }).ClickAsync();
        await browser.ExpectUrlAsync(new Regex($"/settings/webhooks/{hookId}/deliveries/[0-9a-f-]+$"));
        await Assertions.Expect(page.Locator("#delivery-status .badge")).ToHaveTextAsync("Delivered");

        // A date range without events shows none.
        var tomorrow = fx.Clock.GetUtcNow().UtcDateTime.Date.AddDays(1).ToString("yyyy-MM-dd");
        await page.GotoAsync("/activity");
        await page.GetByLabel("From").FillAsync(tomorrow);
        await page.GetByRole(AriaRole.Button, new() { Name = "Filter" }).ClickAsync();
        await Assertions.Expect(rows).ToHaveCountAsync(0);
        browser.AssertClean();
    }
}
