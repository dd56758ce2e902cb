using System.Net;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

/// <summary>
/// The forms an owner configures integrations with, in Chromium against a real Gymwire and a real receiver:
/// post/redirect/get, progress while a request runs, messages after actions, Disable's confirmation and paused
/// retries, Stripe's form, and axe-core on each page in light and dark (screenshots of both, desktop and phone).
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class SafeFormsTests(Chromium chromium, WebhookGymwire fx) : IClassFixture<WebhookGymwire>
{
    [Fact]
    public async Task Reloading_after_generating_a_key_creates_no_second_key_and_shows_it_no_more()
    {
        var gym = await fx.CreateGymAsync("Reload Academy");
        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        await page.GotoAsync("/settings/api-keys/new");
        await Accessibility.CheckAsync(browser, "40-api-key-new");
        await page.GetByLabel("Label").FillAsync("Make scenario");
        await page.GetByRole(AriaRole.Button, new() { Name = "Generate" }).ClickAsync();
        await browser.ExpectPathAsync("/settings/api-keys/new?created=true");
        var key = await page.GetByLabel("API key for Make scenario").InputValueAsync();
        Assert.Matches("^cs_[0-9a-f]{64}$", key);
        await Accessibility.CheckAsync(browser, "41-api-key-shown-once");

        await page.ReloadAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "The new key was shown once" })).ToBeVisibleAsync();
        Assert.DoesNotContain(key, await page.ContentAsync(), StringComparison.Ordinal);
        Assert.Equal(1, await fx.WithDbAsync(db => db.ApiKeys.CountAsync(k => k.GymId == gym.GymId)));
        await Accessibility.CheckAsync(browser, "42-api-key-reloaded");

        // Revoke says what it did.
        await page.GotoAsync("/settings/api-keys");
        await page.GetByRole(AriaRole.Link, new() { Name = "Revoke Make scenario" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Revoke key" }).ClickAsync();
        await browser.ExpectPathAsync("/settings/api-keys");
        await Assertions.Expect(page.Locator("#flash")).ToContainTextAsync("Revoked the key “Make scenario”");
        await Accessibility.CheckAsync(browser, "43-api-key-revoked-message");
        browser.AssertClean();
    }

    [Fact]
    public async Task Disable_asks_first_pauses_queued_retries_and_enable_resumes_them()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/hooks/flaky", n => n == 1 ? new Reply(503, "down") : new Reply(200, "ok"));
        var gym = await fx.CreateGymAsync("Pause Academy");
        Guid hookId;
        using (var owner = gym.Owner())
        {
            hookId = (await (await owner.PostJsonAsync("/api/gym/webhooks", new { url = receiver.Url("/hooks/flaky"), events = new[] { "member.joined" } }))
                .AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid();
            await (await owner.PostJsonAsync("/api/gym/members", new { name = "Pat Lee", user_id = "user_pat" })).AssertStatusAsync(HttpStatusCode.Created);
        }
        await fx.WaitForDeliveryAsync(hookId, d => d.Status == DeliveryStatus.Retrying && d.AttemptCount == 1, "the first attempt failed");

        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        await page.GotoAsync($"/settings/webhooks/{hookId}");
        await page.GetByRole(AriaRole.Link, new() { Name = "Disable" }).ClickAsync();
        await browser.ExpectPathAsync($"/settings/webhooks/{hookId}/disable");
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Disable this webhook?" })).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#queued-note")).ToContainTextAsync("1 delivery is waiting to be sent or retried");
        await Accessibility.CheckAsync(browser, "44-webhook-disable-confirm");
        await page.GetByRole(AriaRole.Button, new() { Name = "Disable webhook" }).ClickAsync();
        await browser.ExpectPathAsync($"/settings/webhooks/{hookId}");
        await Assertions.Expect(page.Locator("#flash")).ToContainTextAsync("1 queued delivery is paused");
        await Assertions.Expect(page.Locator("#webhook-status")).ToHaveTextAsync("Disabled by owner");
        var row = page.Locator("table.deliveries tbody tr");
        await Assertions.Expect(row.Locator("td[data-label='Next retry']")).ToHaveTextAsync("Paused while disabled");
        await Assertions.Expect(row.Locator(".status-code")).ToHaveTextAsync("503");
        await browser.ScreenshotAsync("45-webhook-disabled-paused");

        // Its retry was due in 5 minutes; 10 pass on the fake clock and nothing is sent.
        fx.Clock.Advance(TimeSpan.FromMinutes(10));
        fx.WakeWorker();
        var paused = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().SingleAsync(d => d.SubscriptionId == hookId));
        Assert.Equal((DeliveryStatus.Retrying, 503, (DateTime?)null), (paused.Status, paused.LastStatusCode, paused.NextAttemptAt));
        Assert.Single(receiver.At("/hooks/flaky"));

        await page.GetByRole(AriaRole.Button, new() { Name = "Enable" }).ClickAsync();
        await Assertions.Expect(page.Locator("#flash")).ToContainTextAsync("Webhook enabled. Paused deliveries are being sent now.");
        await receiver.WaitForAsync("/hooks/flaky", 2);
        await fx.WaitForDeliveryAsync(hookId, d => d.Status == DeliveryStatus.Delivered && d.AttemptCount == 2, "the resumed retry delivered");
        await page.ReloadAsync();
        await Assertions.Expect(row.Locator("td[data-label=Status]")).ToHaveTextAsync("Delivered");
        await Assertions.Expect(row.Locator("td[data-label=Attempts]")).ToHaveTextAsync("2");
        browser.AssertClean();
    }

    [Fact]
    public async Task Send_test_to_a_slow_endpoint_shows_that_it_is_waiting()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        receiver.On("/hooks/slow", new Reply(200, "finally") { Gate = answer.Task });
        var gym = await fx.CreateGymAsync("Slow Academy");
        var hook = await gym.CreateWebhookAsync(receiver.Url("/hooks/slow"), "member.joined");
        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        await page.GotoAsync($"/settings/webhooks/{hook.Id}");

        // Clicked in the page, and the button read in the same step: while the form's request runs the page is
        // navigating, and Playwright's locators wait for the navigation to finish (this fixture times out at 2 s).
        var state = await page.GetByRole(AriaRole.Button, new() { Name = "Send Test" }).EvaluateAsync<string[]>(
            "button => { button.click(); return [button.getAttribute('aria-busy'), button.textContent, document.getElementById('test-progress').textContent]; }");
        Assert.Equal(["true", "Sending test…", "Sending test…"], state);
        // The endpoint answers (or this fixture's 2 s timeout ends the attempt): the page shows the outcome, and the button is idle.
        answer.SetResult();
        await Assertions.Expect(page.Locator("#test-result")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send Test" })).ToBeEnabledAsync();
        Assert.Single(receiver.At("/hooks/slow"));
        browser.AssertClean();
    }

    [Fact]
    public async Task A_test_answered_at_once_shows_the_answer_and_no_slow_flag()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/hooks/fast", new Reply(200, "fast"));
        var gym = await fx.CreateGymAsync("Fast Academy");
        var hook = await gym.CreateWebhookAsync(receiver.Url("/hooks/fast"), "member.joined");
        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        await page.GotoAsync($"/settings/webhooks/{hook.Id}");
        await page.GetByRole(AriaRole.Button, new() { Name = "Send Test" }).ClickAsync();
        await Assertions.Expect(page.Locator("#test-status-code")).ToHaveTextAsync("200");
        await Assertions.Expect(page.Locator("#test-result")).Not.ToContainTextAsync("no answer");
        await Assertions.Expect(page.Locator("#test-slow")).ToHaveCountAsync(0);
        browser.AssertClean();
    }

    [Fact]
    public async Task Stripe_form_saves_the_secret_shows_the_endpoint_and_removes_it()
    {
        var gym = await fx.CreateGymAsync("Stripe Academy");
        await using var browser = await DashboardPage.OpenAsync(chromium, fx, clipboard: true);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var payments = page.GetByRole(AriaRole.Listitem, new() { Name = "Payments", Exact = true });
        await payments.GetByRole(AriaRole.Link, new() { Name = "Configure Payments" }).ClickAsync();
        await browser.ExpectPathAsync("/settings/integrations/payments");
        var endpoint = $"{fx.BaseAddress.GetLeftPart(UriPartial.Authority)}/api/integrations/stripe/webhook/{gym.GymId}";
        await Assertions.Expect(page.GetByLabel("Your gym's Stripe endpoint URL")).ToHaveValueAsync(endpoint);
        await page.GetByRole(AriaRole.Button, new() { Name = "Copy" }).ClickAsync();
        Assert.Equal(endpoint, await page.EvaluateAsync<string>("() => navigator.clipboard.readText()"));
        await Accessibility.CheckAsync(browser, "47-payments-not-connected");

        await page.GetByRole(AriaRole.Textbox, new() { Name = "Signing secret", Exact = true }).FillAsync("not-a-secret");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save secret" }).ClickAsync();
        await Assertions.Expect(page.Locator("#form-errors")).ToContainTextAsync("starts with 'whsec_'");
        await page.GetByRole(AriaRole.Textbox, new() { Name = "Signing secret", Exact = true }).FillAsync("whsec_browserFormSecretAbCd");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save secret" }).ClickAsync();
        await browser.ExpectPathAsync("/settings/integrations/payments");
        await Assertions.Expect(page.Locator("#flash")).ToContainTextAsync("Stripe signing secret saved (ending …AbCd)");
        await Assertions.Expect(page.Locator("#stripe-configured")).ToContainTextAsync("…AbCd");
        Assert.DoesNotContain("whsec_browserFormSecretAbCd", await page.ContentAsync(), StringComparison.Ordinal);
        await Assertions.Expect(page.Locator(".title-row .badge")).ToHaveTextAsync("Connected");
        await Accessibility.CheckAsync(browser, "48-payments-connected");

        await page.GetByRole(AriaRole.Button, new() { Name = "Remove secret" }).ClickAsync();
        await Assertions.Expect(page.Locator("#flash")).ToContainTextAsync("Stripe disconnected");
        await Assertions.Expect(page.Locator("#stripe-configured")).ToHaveCountAsync(0);
        Assert.False(await fx.WithDbAsync(db => db.StripeAccounts.AnyAsync(a => a.GymId == gym.GymId)));
        browser.AssertClean();
    }

    [Fact]
    public async Task Integration_and_webhook_form_pages_are_accessible_in_light_and_dark_on_desktop_and_phone()
    {
        var gym = await fx.CreateGymAsync("Forms Academy");
        var hook = await gym.CreateWebhookAsync("http://127.0.0.1:9/hooks/a", "member.created", "payment.received");
        foreach (var (width, height, prefix) in new[] { (1280, 800, "50-desktop"), (375, 812, "60-phone") })
        {
            await using var browser = await DashboardPage.OpenAsync(chromium, fx, width, height);
            var page = browser.Page;
            await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
            foreach (var (path, name) in new[]
                     {
                         ("/settings/integrations/payments", "payments"), ("/settings/integrations/accounting", "accounting"),
                         ("/settings/integrations/sms", "sms"), ("/settings/integrations/email", "email"),
                         ("/settings/webhooks/new", "webhook-new"), ($"/settings/webhooks/{hook.Id}/edit", "webhook-edit"),
                         ($"/settings/webhooks/{hook.Id}/disable", "webhook-disable"), ($"/settings/webhooks/{hook.Id}/rotate-secret", "webhook-rotate"),
                         ($"/settings/webhooks/{hook.Id}/delete", "webhook-delete"),
                     })
            {
                await page.GotoAsync(path);
                var widths = await page.EvaluateAsync<int[]>("[document.documentElement.scrollWidth, window.innerWidth]");
                Assert.True(widths[0] <= widths[1], $"{path}: {widths[0]}px wide in a {widths[1]}px viewport");
                await Accessibility.CheckAsync(browser, $"{prefix}-{name}");
            }

            // The event picker: select-all per category, and choosing an event leaves "All events".
            await page.GotoAsync("/settings/webhooks/new");
            await Assertions.Expect(page.GetByLabel("All events")).ToBeCheckedAsync();
            await page.GetByRole(AriaRole.Button, new() { Name = "Select all payments" }).ClickAsync();
            foreach (var name in new[] { "payment.received", "payment.failed", "payment.refunded" })
            {
                await Assertions.Expect(page.GetByLabel(name, new() { Exact = true })).ToBeCheckedAsync();
            }
            await Assertions.Expect(page.GetByLabel("Name it payment.successful instead")).Not.ToBeCheckedAsync();
            await Assertions.Expect(page.GetByLabel("Only the events I choose")).ToBeCheckedAsync();
            await page.GetByLabel("All events").CheckAsync();
            await Assertions.Expect(page.GetByLabel("payment.received", new() { Exact = true })).Not.ToBeCheckedAsync();

            // A duplicate URL is warned about.
            await page.GetByLabel("Endpoint URL").FillAsync("http://127.0.0.1:9/hooks/a");
            await page.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
            await Assertions.Expect(page.Locator("#duplicate-url")).ToContainTextAsync("already has a webhook sending to this URL");
            await Accessibility.CheckAsync(browser, $"{prefix}-webhook-duplicate-warning");
            browser.AssertClean();
        }
    }
}
