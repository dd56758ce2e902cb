using System.Net;
using System.Text.RegularExpressions;
using Gymwire.Features.Dashboard.Settings;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

/// <summary>Gymwire allowed to deliver to the loopback receiver over plain HTTP, with no retry jitter.</summary>
public sealed class WebhookGymwire() : GymwireFixture(Store.Sqlite)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        new("Webhooks:AllowHttp", "true"),
        new("Webhooks:AllowedNetworks:0", "127.0.0.0/8"),
        new("Webhooks:RetryJitter", "0"),
        new("Webhooks:Timeout", "00:00:02"),
    ];
}

/// <summary>The API Keys and Webhooks pages, flow by flow, against a real Gymwire and a real webhook receiver.</summary>
[Collection(BrowserCollection.Name)]
public sealed partial class IntegrationPagesTests(Chromium chromium, WebhookGymwire fx) : IClassFixture<WebhookGymwire>
{
    private const string Triggers = "/api/zapier/triggers?type=new_member";

    private ILocator Nav(IPage page, string name) =>
        page.GetByRole(AriaRole.Navigation, new() { Name = "Dashboard" }).GetByRole(AriaRole.Link, new() { Name = name, Exact = true });

    [Fact]
    public async Task Owner_generates_and_copies_a_key_uses_it_then_revokes_it()
    {
        var gym = await fx.CreateGymAsync("Keys Academy");
        await using var browser = await DashboardPage.OpenAsync(chromium, fx, clipboard: true);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);

        await Nav(page, "API Keys").ClickAsync();
        await browser.ExpectPathAsync("/settings/api-keys");
        await Assertions.Expect(Nav(page, "API Keys")).ToHaveAttributeAsync("aria-current", "page");
        await Assertions.Expect(page.GetByText("No API keys yet.")).ToBeVisibleAsync();
        await browser.ScreenshotAsync("12-api-keys-empty");

        await page.GetByRole(AriaRole.Link, new() { Name = "Generate New Key" }).ClickAsync();
        await page.GetByLabel("Label").FillAsync("Zapier Integration");
        await page.GetByLabel("Read Only").CheckAsync();
        await browser.ScreenshotAsync("13-api-key-new");
        await page.GetByRole(AriaRole.Button, new() { Name = "Generate" }).ClickAsync();

        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Your new API key" })).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("It will not be shown again");
        var shown = await page.GetByLabel("API key for Zapier Integration").InputValueAsync();
        Assert.Matches("^cs_[0-9a-f]{64}$", shown);
        await page.GetByRole(AriaRole.Button, new() { Name = "Copy" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToHaveTextAsync("Copied to the clipboard.");
        var copied = await page.EvaluateAsync<string>("() => navigator.clipboard.readText()");
        Assert.Equal(shown, copied);
        await browser.ScreenshotAsync("14-api-key-created");

        using var api = fx.Client(copied);
        await (await api.GetAsync(Triggers)).AssertStatusAsync(HttpStatusCode.OK);

        await page.GetByRole(AriaRole.Link, new() { Name = "Done" }).ClickAsync();
        await browser.ExpectPathAsync("/settings/api-keys");
        var row = page.Locator("table.list tbody tr");
        await Assertions.Expect(row).ToHaveCountAsync(1);
        await Assertions.Expect(row.Locator("td[data-label=Label]")).ToHaveTextAsync("Zapier Integration");
        await Assertions.Expect(row.Locator("td[data-label=Key]")).ToHaveTextAsync(copied[..11] + "…");
        await Assertions.Expect(row.Locator("td[data-label=Permissions]")).ToHaveTextAsync("Read Only");
        await Assertions.Expect(row.Locator("td[data-label=Status]")).ToHaveTextAsync("Active");
        await Assertions.Expect(row.Locator("td[data-label='Last used']")).ToHaveTextAsync(WebhookViews.Time(fx.Clock.GetUtcNow().UtcDateTime)[..16] + " UTC");
        Assert.DoesNotContain(copied, await page.ContentAsync(), StringComparison.Ordinal);
        await browser.ScreenshotAsync("15-api-keys-list");

        await Nav(page, "Integrations").ClickAsync();
        var zapier = page.GetByRole(AriaRole.Listitem, new() { Name = "Zapier / Make webhooks", Exact = true });
        await Assertions.Expect(zapier.Locator(".badge")).ToHaveTextAsync("Connected");
        await Assertions.Expect(zapier).ToContainTextAsync("1 API key used in the last 30 days");

        await Nav(page, "API Keys").ClickAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = "Revoke Zapier Integration" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Revoke “Zapier Integration”?" })).ToBeVisibleAsync();
        await browser.ScreenshotAsync("16-api-key-revoke-confirm");
        await page.GetByRole(AriaRole.Button, new() { Name = "Revoke key" }).ClickAsync();
        await browser.ExpectPathAsync("/settings/api-keys");
        await Assertions.Expect(row.Locator("td[data-label=Status]")).ToHaveTextAsync("Revoked");
        await (await api.GetAsync(Triggers)).AssertErrorAsync(HttpStatusCode.Unauthorized);
        await browser.ScreenshotAsync("17-api-keys-revoked");
        browser.AssertClean();
    }

    [Fact]
    public async Task Owner_creates_a_webhook_sends_a_test_that_arrives_signed_then_rotates_edits_disables_and_deletes_it()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/hooks/zap", new Reply(200, """{"status":"success","attempt":"accepted"}"""));
        var gym = await fx.CreateGymAsync("Hooks Academy");
        await using var browser = await DashboardPage.OpenAsync(chromium, fx, clipboard: true);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);

        await Nav(page, "Webhooks").ClickAsync();
        await browser.ExpectPathAsync("/settings/webhooks");
        await Assertions.Expect(page.GetByText("No webhooks yet.")).ToBeVisibleAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = "New Webhook" }).ClickAsync();
        await page.GetByLabel("Endpoint URL").FillAsync(receiver.Url("/hooks/zap"));
        await page.GetByLabel("member.joined").CheckAsync();
        await page.GetByLabel("payment.received").CheckAsync();
        await Assertions.Expect(page.GetByText("A new member joins the gym.")).ToBeVisibleAsync();
        await browser.ScreenshotAsync("18-webhook-new");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();

        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Webhook created" })).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("It will not be shown again");
        var secret = await page.GetByLabel("Signing secret", new() { Exact = true }).InputValueAsync();
        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        await page.GetByRole(AriaRole.Button, new() { Name = "Copy" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToHaveTextAsync("Copied to the clipboard.");
        Assert.Equal(secret, await page.EvaluateAsync<string>("() => navigator.clipboard.readText()"));
        await browser.ScreenshotAsync("19-webhook-created");

        await page.GetByRole(AriaRole.Link, new() { Name = "Open webhook" }).ClickAsync();
        await Assertions.Expect(page.Locator("#webhook-status")).ToHaveTextAsync("Active");
        Assert.DoesNotContain(secret, await page.ContentAsync(), StringComparison.Ordinal);
        await page.GetByLabel("Event type").SelectOptionAsync("payment.received");
        await page.GetByRole(AriaRole.Button, new() { Name = "Send Test" }).ClickAsync();
        await Assertions.Expect(page.Locator("#test-result")).ToContainTextAsync("Test delivered.");
        await Assertions.Expect(page.Locator("#test-status-code")).ToHaveTextAsync("200");
        await Assertions.Expect(page.Locator("#test-response-body")).ToHaveTextAsync("""{"status":"success","attempt":"accepted"}""");

        var request = (await receiver.WaitForAsync("/hooks/zap", 1)).Single();
        Assert.Equal("payment.received", request.Header("X-CombatScore-Event"));
        Assert.True(StandardWebhooksVerifier.VerifyCombatScore(secret, request.Headers, request.Body), "X-CombatScore-Signature does not verify");
        Assert.True(StandardWebhooksVerifier.Verify(secret, request.Headers, request.Body, fx.Clock.GetUtcNow()), "webhook-signature does not verify");

        var log = page.Locator("table.deliveries tbody tr");
        await Assertions.Expect(log).ToHaveCountAsync(1);
        await Assertions.Expect(log.Locator("td[data-label=Event]")).ToContainTextAsync("payment.received");
        await Assertions.Expect(log.Locator("td[data-label=Status]")).ToHaveTextAsync("Delivered");
        await Assertions.Expect(log.Locator("td[data-label=Attempts]")).ToHaveTextAsync("1");
        await Assertions.Expect(log.Locator(".status-code")).ToHaveTextAsync("200");
        await browser.ScreenshotAsync("20-webhook-test-sent");

        // Rotate: confirm, then the new secret once; the next test is signed with it.
        await page.GetByRole(AriaRole.Link, new() { Name = "Rotate secret" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Rotate the signing secret?" })).ToBeVisibleAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Rotate secret" }).ClickAsync();
        var rotated = await page.GetByLabel("Signing secret", new() { Exact = true }).InputValueAsync();
        Assert.NotEqual(secret, rotated);
        await browser.ScreenshotAsync("21-webhook-secret-rotated");
        await page.GetByRole(AriaRole.Link, new() { Name = "Done" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Send Test" }).ClickAsync();
        await Assertions.Expect(page.Locator("#test-result")).ToContainTextAsync("Test delivered.");
        var second = (await receiver.WaitForAsync("/hooks/zap", 2))[1];
        Assert.Equal("member.joined", second.Header("X-CombatScore-Event"));
        Assert.True(StandardWebhooksVerifier.Verify(rotated, second.Headers, second.Body, fx.Clock.GetUtcNow()), "the new secret signs");

        // Edit the events.
        await page.GetByRole(AriaRole.Link, new() { Name = "Edit" }).ClickAsync();
        await Assertions.Expect(page.GetByLabel("payment.received")).ToBeCheckedAsync();
        await page.GetByLabel("payment.received").UncheckAsync();
        await page.GetByLabel("lead.created").CheckAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Assertions.Expect(page.Locator(".facts")).ToContainTextAsync("member.joined, lead.created");

        // Disable (after confirming) and enable.
        await page.GetByRole(AriaRole.Link, new() { Name = "Disable" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Disable webhook" }).ClickAsync();
        await Assertions.Expect(page.Locator("#webhook-status")).ToHaveTextAsync("Disabled by owner");
        await Assertions.Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send Test" })).ToBeDisabledAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Enable" }).ClickAsync();
        await Assertions.Expect(page.Locator("#webhook-status")).ToHaveTextAsync("Active");

        await Nav(page, "Webhooks").ClickAsync();
        await Assertions.Expect(page.Locator("table.list tbody tr")).ToHaveCountAsync(1);
        await browser.ScreenshotAsync("22-webhooks-list");

        // Delete, after confirming.
        await page.GetByRole(AriaRole.Link, new() { Name = receiver.Url("/hooks/zap") }).ClickAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = "Delete" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Delete this webhook?" })).ToBeVisibleAsync();
        await browser.ScreenshotAsync("23-webhook-delete-confirm");
        await page.GetByRole(AriaRole.Button, new() { Name = "Delete webhook" }).ClickAsync();
        await browser.ExpectPathAsync("/settings/webhooks");
        await Assertions.Expect(page.GetByText("No webhooks yet.")).ToBeVisibleAsync();
        browser.AssertClean();
    }

    [Fact]
    public async Task Failing_endpoint_shows_its_retry_schedule_and_the_owner_redelivers()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/hooks/down", n => n <= 2 ? new Reply(503, "down for maintenance") : new Reply(200, "back"));
        var gym = await fx.CreateGymAsync("Retry Academy");
        string secret;
        Guid hookId;
        using (var owner = gym.Owner())
        {
            var created = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url = receiver.Url("/hooks/down"), events = new[] { "member.joined" } }))
                .AssertStatusAsync(HttpStatusCode.Created);
            secret = created.GetProperty("secret").GetString()!;
            hookId = created.GetProperty("id").GetGuid();
            await (await owner.PostJsonAsync("/api/gym/members", new { name = "Dana Reyes", user_id = "user_dana" })).AssertStatusAsync(HttpStatusCode.Created);
        }
        var first = await WaitForDeliveryAsync(hookId, d => d.Status == DeliveryStatus.Retrying && d.AttemptCount == 1);
        var schedule = fx.Services.GetRequiredService<IOptions<WebhookOptions>>().Value.EffectiveRetrySchedule;
        Assert.Equal(first.LastAttemptAt + schedule[0], first.NextAttemptAt);

        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var zapier = page.GetByRole(AriaRole.Listitem, new() { Name = "Zapier / Make webhooks", Exact = true });
        await Assertions.Expect(zapier.Locator(".badge")).ToHaveTextAsync("Error");
        await Assertions.Expect(zapier).ToContainTextAsync($"Deliveries to {receiver.BaseAddress.Authority}/hooks/down have been failing since");
        await browser.ScreenshotAsync("24-integrations-webhook-failing");
        await zapier.GetByRole(AriaRole.Link, new() { Name = "Configure Zapier / Make webhooks" }).ClickAsync();
        await browser.ExpectPathAsync("/settings/webhooks");
        await page.GetByRole(AriaRole.Link, new() { Name = receiver.Url("/hooks/down") }).ClickAsync();

        await Assertions.Expect(page.Locator("#activity")).ToContainTextAsync("retried 5 minutes, 30 minutes and 2 hours after each failure");
        var row = page.Locator("table.deliveries tbody tr");
        await Assertions.Expect(row).ToHaveCountAsync(1);
        await Assertions.Expect(row.Locator("td[data-label=Status]")).ToHaveTextAsync("Retrying");
        await Assertions.Expect(row.Locator("td[data-label=Attempts]")).ToHaveTextAsync("1");
        await Assertions.Expect(row.Locator("td[data-label='Next retry']")).ToHaveTextAsync(Spaces($"{WebhookViews.Time(first.LastAttemptAt!.Value + schedule[0])} (in 5 minutes)"));
        await Assertions.Expect(row.Locator(".status-code")).ToHaveTextAsync("503");
        await Assertions.Expect(row.Locator(".body-excerpt")).ToHaveTextAsync("down for maintenance");
        await browser.ScreenshotAsync("25-webhook-retrying");

        // The first retry, five minutes later, fails too: the next is 30 minutes after it.
        fx.Clock.Advance(schedule[0]);
        fx.Services.GetRequiredService<DeliverySignal>().Notify();
        var retried = await WaitForDeliveryAsync(hookId, d => d.AttemptCount == 2);
        Assert.Equal(DeliveryStatus.Retrying, retried.Status);
        await page.ReloadAsync();
        await Assertions.Expect(row.Locator("td[data-label=Attempts]")).ToHaveTextAsync("2");
        await Assertions.Expect(row.Locator("td[data-label='Next retry']")).ToHaveTextAsync(Spaces($"{WebhookViews.Time(retried.LastAttemptAt!.Value + schedule[1])} (in 30 minutes)"));

        // Redeliver now, without waiting for the schedule: the endpoint is back.
        await row.GetByRole(AriaRole.Button, new() { Name = "Redeliver" }).ClickAsync();
        await browser.ExpectUrlAsync(new Regex("/settings/webhooks/[0-9a-f-]+#activity$"));
        await WaitForDeliveryAsync(hookId, d => d.Status == DeliveryStatus.Delivered);
        await page.ReloadAsync();
        await Assertions.Expect(row.Locator("td[data-label=Status]")).ToHaveTextAsync("Delivered");
        await Assertions.Expect(row.Locator("td[data-label=Attempts]")).ToHaveTextAsync("3");
        await Assertions.Expect(row.Locator(".status-code")).ToHaveTextAsync("200");
        await Assertions.Expect(row.Locator("td[data-label='Next retry']")).ToHaveTextAsync("None");
        await browser.ScreenshotAsync("26-webhook-redelivered");

        var requests = receiver.At("/hooks/down");
        Assert.Equal(3, requests.Count);
        Assert.Single(requests.Select(r => r.Header("webhook-id")).Distinct());
        Assert.All(requests, r => Assert.True(StandardWebhooksVerifier.VerifyCombatScore(secret, r.Headers, r.Body)));
        await Nav(page, "Integrations").ClickAsync();
        await Assertions.Expect(zapier.Locator(".badge")).ToHaveTextAsync("Connected");
        browser.AssertClean();
    }

    [Fact]
    public async Task Phone_sized_screen_shows_the_key_and_webhook_pages_without_horizontal_scrolling()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/a/rather/long/path/for/a/phone/screen/webhook-receiver", new Reply(500, "Internal error: the receiving application could not process this event"));
        var gym = await fx.CreateGymAsync("Phone Fitness Club");
        using (var owner = gym.Owner())
        {
            await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "A key with a long descriptive label for Make", scopes = new[] { "read", "write" } }))
                .AssertStatusAsync(HttpStatusCode.Created);
        }
        await using var browser = await DashboardPage.OpenAsync(chromium, fx, width: 375, height: 812);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);

        await page.GotoAsync("/settings/api-keys");
        await AssertNoHorizontalScrollAsync(page);
        await browser.ScreenshotAsync("27-phone-api-keys");
        await page.GetByRole(AriaRole.Link, new() { Name = "Generate New Key" }).ClickAsync();
        await page.GetByLabel("Label").FillAsync("Phone key");
        await page.GetByLabel("Read/Write").CheckAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Generate" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Your new API key" })).ToBeVisibleAsync();
        await AssertNoHorizontalScrollAsync(page);
        await browser.ScreenshotAsync("28-phone-api-key-created");

        await page.GotoAsync("/settings/webhooks/new");
        await AssertNoHorizontalScrollAsync(page);
        await browser.ScreenshotAsync("29-phone-webhook-new");
        await page.GetByLabel("Endpoint URL").FillAsync(receiver.Url("/a/rather/long/path/for/a/phone/screen/webhook-receiver"));
        await page.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Webhook created" })).ToBeVisibleAsync();
        await AssertNoHorizontalScrollAsync(page);
        await page.GetByRole(AriaRole.Link, new() { Name = "Open webhook" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Send Test" }).ClickAsync();
        await Assertions.Expect(page.Locator("#test-result")).ToContainTextAsync("Test failed.");
        await Assertions.Expect(page.Locator("#test-status-code")).ToHaveTextAsync("500");
        await AssertNoHorizontalScrollAsync(page);
        await browser.ScreenshotAsync("30-phone-webhook");
        browser.AssertClean();
    }

    [Fact]
    public async Task Keyboard_alone_generates_a_key_and_copies_it()
    {
        var gym = await fx.CreateGymAsync();
        await using var browser = await DashboardPage.OpenAsync(chromium, fx, clipboard: true);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        await page.GotoAsync("/settings/api-keys/new");

        await page.GetByLabel("Label").FocusAsync();
        await page.Keyboard.TypeAsync("Keyboard key");
        await page.Keyboard.PressAsync("Tab");
        Assert.Equal("Read Only", await FocusedLabelAsync(page));
        await page.Keyboard.PressAsync("ArrowDown");
        Assert.Equal("Read/Write", await FocusedLabelAsync(page));
        await page.Keyboard.PressAsync("Tab");
        Assert.Equal("Generate", await FocusedLabelAsync(page));
        Assert.NotEqual("none", await page.EvaluateAsync<string>("getComputedStyle(document.activeElement).outlineStyle"));
        await page.Keyboard.PressAsync("Enter");

        var field = page.GetByLabel("API key for Keyboard key");
        await Assertions.Expect(field).ToBeVisibleAsync();
        await field.FocusAsync();
        await page.Keyboard.PressAsync("Tab");
        Assert.Equal("Copy", await FocusedLabelAsync(page));
        await page.Keyboard.PressAsync("Enter");
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToHaveTextAsync("Copied to the clipboard.");
        Assert.Equal(await field.InputValueAsync(), await page.EvaluateAsync<string>("() => navigator.clipboard.readText()"));
        await browser.ScreenshotAsync("31-keyboard-key-copied");
        Assert.Contains("Read/Write", await page.Locator(".facts").TextContentAsync(), StringComparison.Ordinal);
        browser.AssertClean();
    }

    private static Task<string> FocusedLabelAsync(IPage page) => page.EvaluateAsync<string>("""
        () => {
          const e = document.activeElement;
          if (!e) return "";
          return (e.labels && e.labels.length ? e.labels[0].textContent : e.textContent).trim();
        }
        """);

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

    /// <summary>Playwright's text match normalises whitespace; so does this.</summary>
    private static Regex Spaces(string text) => new("^\\s*" + Regex.Escape(text).Replace("\\ ", "\\s+", StringComparison.Ordinal) + "\\s*$");

    private static async Task AssertNoHorizontalScrollAsync(IPage page)
    {
        var widths = await page.EvaluateAsync<int[]>("[document.documentElement.scrollWidth, window.innerWidth]");
        Assert.True(widths[0] <= widths[1], $"page is {widths[0]}px wide in a {widths[1]}px viewport");
    }
}
