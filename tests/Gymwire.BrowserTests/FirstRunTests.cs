using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

/// <summary>Needs an empty database: its own Gymwire, one test.</summary>
[Collection(BrowserCollection.Name)]
public sealed class FirstRunTests(Chromium chromium, SqliteGymwire fx) : IClassFixture<SqliteGymwire>
{
    [Fact]
    public async Task Setup_creates_the_gym_and_owner_and_is_gone_afterwards()
    {
        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;

        await page.GotoAsync("/");
        Assert.Equal("/setup", browser.CurrentPath);
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Set up Gymwire" })).ToBeVisibleAsync();
        await Accessibility.CheckAsync(browser, "01-setup");
        await using (var phone = await DashboardPage.OpenAsync(chromium, fx, width: 375, height: 812))
        {
            await phone.Page.GotoAsync("/setup");
            var widths = await phone.Page.EvaluateAsync<int[]>("[document.documentElement.scrollWidth, window.innerWidth]");
            Assert.True(widths[0] <= widths[1], $"/setup: {widths[0]}px wide in a {widths[1]}px viewport");
            await Accessibility.CheckAsync(phone, "01-phone-setup");
        }

        await page.GetByLabel("Gym name").FillAsync("Riverside Jiu-Jitsu");
        await page.GetByLabel("Owner email").FillAsync("owner@riverside.example");
        await page.GetByLabel("Password", new() { Exact = true }).FillAsync("riverside-owner-1");
        await page.GetByLabel("Confirm password").FillAsync("riverside-owner-2");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create gym" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToHaveTextAsync("The passwords do not match.");
        await Accessibility.CheckAsync(browser, "02-setup-error");

        await page.GetByLabel("Password", new() { Exact = true }).FillAsync("riverside-owner-1");
        await page.GetByLabel("Confirm password").FillAsync("riverside-owner-1");
        await page.GetByLabel("Time zone").SelectOptionAsync("Europe/Lisbon");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create gym" }).ClickAsync();
        await browser.ExpectPathAsync("/settings/integrations");
        await Assertions.Expect(page.Locator(".gym-name")).ToHaveTextAsync("Riverside Jiu-Jitsu");
        Assert.Equal("Europe/Lisbon", await fx.WithDbAsync(db => db.Gyms.Select(g => g.TimeZone).SingleAsync()));

        await page.GetByRole(AriaRole.Button, new() { Name = "Log out" }).ClickAsync();
        await browser.ExpectPathAsync("/login");
        await page.GotoAsync("/setup");
        Assert.Equal("/login", browser.CurrentPath);

        await browser.LoginAsync("owner@riverside.example", "riverside-owner-1");
        await Assertions.Expect(page.Locator(".gym-name")).ToHaveTextAsync("Riverside Jiu-Jitsu");
        browser.AssertClean();
    }
}
