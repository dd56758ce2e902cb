using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

/// <summary>Gymwire that waits 10 s for a webhook's answer, so an attempt can take more than the 5 s a test send is flagged slow after.</summary>
public sealed class PatientWebhookGymwire() : GymwireFixture(Store.Sqlite)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        new("Webhooks:AllowHttp", "true"),
        new("Webhooks:AllowedNetworks:0", "127.0.0.0/8"),
        new("Webhooks:RetryJitter", "0"),
        new("Webhooks:Timeout", "00:00:10"),
    ];
}

/// <summary>
/// Issue #30, "Safe forms": Send Test against a slow endpoint says it is still waiting once 5 s have passed, and a test
/// whose attempt took over 5 s is flagged slow. The flag is about the wall time of the HTTP attempt (the sender
/// measures it with a stopwatch, not the server's clock), so the receiver really answers late.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class SlowTestTests(Chromium chromium, PatientWebhookGymwire fx) : IClassFixture<PatientWebhookGymwire>
{
    [Fact]
    public async Task A_test_over_5_seconds_shows_it_is_still_waiting_then_is_flagged_slow()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // The answer waits for the test's word and for 5.5 s from the request's arrival, so the attempt's own stopwatch
        // reads over 5 s however long the server took to send it after the click.
        receiver.On("/hooks/slow", _ => new Reply(200, "late") { Gate = Task.WhenAll(answer.Task, Task.Delay(TimeSpan.FromSeconds(5.5))) });
        var gym = await fx.CreateGymAsync("Patient Academy");
        var hook = await gym.CreateWebhookAsync(receiver.Url("/hooks/slow"), "member.joined");
        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        await page.GotoAsync($"/settings/webhooks/{hook.Id}");

        // Clicked and read in the page in one step: while the form's request runs the page is navigating, and
        // Playwright's locators would wait for the navigation to finish. The receiver holds its answer meanwhile.
        var state = await page.GetByRole(AriaRole.Button, new() { Name = "Send Test" }).EvaluateAsync<string[]>("""
            button => {
                button.click();
                return new Promise(done => setTimeout(() => done([
                    String(button.classList.contains('slow')), button.getAttribute('aria-busy'),
                    document.getElementById('test-progress').textContent]), 5300));
            }
            """);
        Assert.Equal(["true", "true", "Still waiting for your endpoint: over 5 seconds so far."], state);

        answer.SetResult();
        await Assertions.Expect(page.Locator("#test-status-code")).ToHaveTextAsync("200", new() { Timeout = 20_000 });
        await Assertions.Expect(page.Locator("#test-slow")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^Slow: [5-9]\.\d s$"));
        await Assertions.Expect(page.Locator("#test-result")).ToContainTextAsync("Answer within 5 seconds");
        await Assertions.Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send Test" })).ToBeEnabledAsync();
        Assert.Single(receiver.At("/hooks/slow"));
        browser.AssertClean();
    }
}
