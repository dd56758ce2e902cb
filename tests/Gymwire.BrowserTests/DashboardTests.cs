using System.Net;
using Gymwire.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

[Collection(BrowserCollection.Name)]
public sealed class DashboardTests(Chromium chromium, SqliteGymwire fx) : IClassFixture<SqliteGymwire>
{
    private static readonly string[] Tiles = ["Payments", "SMS", "Email", "Accounting export", "Zapier / Make webhooks"];

    [Fact]
    public async Task Wrong_password_shows_an_error()
    {
        var gym = await fx.CreateGymAsync();
        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await page.GotoAsync("/login");
        await browser.ScreenshotAsync("03-login");
        await page.GetByLabel("Email").FillAsync(gym.OwnerEmail);
        await page.GetByLabel("Password").FillAsync("not-the-password");
        await page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToHaveTextAsync("Invalid email or password.");
        Assert.Equal("/login", browser.CurrentPath);
        await browser.ScreenshotAsync("04-login-error");
        browser.AssertClean();
    }

    [Fact]
    public async Task Owner_sees_integration_tiles_and_the_activity_from_the_api_then_logs_out()
    {
        var gym = await fx.CreateGymAsync("Northside Boxing");
        using (var api = gym.Owner())
        {
            await (await api.PostJsonAsync("/api/gym/members", new { name = "Ana Silva", user_id = "user_ana" })).AssertStatusAsync(HttpStatusCode.Created);
            await (await api.PostJsonAsync("/api/gym/leads", new { first_name = "Ben", last_name = "Okafor", source = "website" })).AssertStatusAsync(HttpStatusCode.Created);
        }
        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;

        await page.GotoAsync("/");
        Assert.StartsWith("/login", browser.CurrentPath, StringComparison.Ordinal);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);

        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Integrations", Level = 1 })).ToBeVisibleAsync();
        var tiles = page.Locator(".tile");
        await Assertions.Expect(tiles).ToHaveCountAsync(Tiles.Length);
        foreach (var name in Tiles)
        {
            var tile = page.GetByRole(AriaRole.Listitem, new() { Name = name, Exact = true });
            await Assertions.Expect(tile.Locator(".badge")).ToHaveTextAsync("Not Connected");
            await Assertions.Expect(tile.GetByRole(AriaRole.Link, new() { Name = $"Configure {name}" })).ToBeVisibleAsync();
        }
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = "Integrations" })).ToHaveAttributeAsync("aria-current", "page");
        await browser.ScreenshotAsync("05-integrations");

        await page.GetByRole(AriaRole.Link, new() { Name = "Configure Payments" }).ClickAsync();
        await browser.ExpectPathAsync("/settings/integrations/payments");
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Payments", Level = 1 })).ToBeVisibleAsync();
        await browser.ScreenshotAsync("06-integration-payments");

        await page.GetByRole(AriaRole.Navigation, new() { Name = "Dashboard" }).GetByRole(AriaRole.Link, new() { Name = "Activity" }).ClickAsync();
        await browser.ExpectPathAsync("/activity");
        var rows = page.Locator("table.events tbody tr");
        await Assertions.Expect(rows).ToHaveCountAsync(2);
        await Assertions.Expect(rows.Nth(0)).ToContainTextAsync("lead.created");
        await Assertions.Expect(rows.Nth(1)).ToContainTextAsync("member.joined");
        await Assertions.Expect(rows.Nth(1)).ToContainTextAsync("Ana Silva");
        await browser.ScreenshotAsync("07-activity");

        await page.GetByLabel("Event type").SelectOptionAsync("member.joined");
        await page.GetByRole(AriaRole.Button, new() { Name = "Filter" }).ClickAsync();
        await browser.ExpectPathAsync("/activity?type=member.joined&from=&to=");
        await Assertions.Expect(rows).ToHaveCountAsync(1);

        await page.GetByRole(AriaRole.Button, new() { Name = "Log out" }).ClickAsync();
        await browser.ExpectPathAsync("/login");
        await page.GotoAsync("/settings/integrations");
        Assert.StartsWith("/login", browser.CurrentPath, StringComparison.Ordinal);
        browser.AssertClean();
    }

    [Fact]
    public async Task Phone_sized_screen_shows_the_pages_without_horizontal_scrolling()
    {
        var gym = await fx.CreateGymAsync("A Gym With A Rather Long Name For A Small Phone Screen");
        using (var api = gym.Owner())
        {
            await (await api.PostJsonAsync("/api/gym/members", new { name = "Chloé Dubois-Fernández", user_id = "user_chloe_with_a_long_identifier_0123456789" }))
                .AssertStatusAsync(HttpStatusCode.Created);
        }
        await using var browser = await DashboardPage.OpenAsync(chromium, fx, width: 375, height: 812);
        var page = browser.Page;

        await page.GotoAsync("/login");
        await AssertNoHorizontalScrollAsync(page);
        await browser.ScreenshotAsync("08-phone-login");
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        await Assertions.Expect(page.Locator(".tile")).ToHaveCountAsync(Tiles.Length);
        await AssertNoHorizontalScrollAsync(page);
        await browser.ScreenshotAsync("09-phone-integrations");

        await page.GotoAsync("/activity");
        await Assertions.Expect(page.Locator("table.events tbody tr")).ToHaveCountAsync(1);
        await AssertNoHorizontalScrollAsync(page);
        await browser.ScreenshotAsync("10-phone-activity");
        browser.AssertClean();
    }

    [Fact]
    public async Task Keyboard_alone_reaches_the_login_fields_and_signs_in()
    {
        var gym = await fx.CreateGymAsync();
        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await page.GotoAsync("/login");

        await page.Keyboard.PressAsync("Tab");
        Assert.Equal("Skip to main content", await FocusedAsync(page));
        var visited = new List<string>();
        for (var i = 0; i < 6 && !visited.Contains("button:Log in"); i++)
        {
            await page.Keyboard.PressAsync("Tab");
            visited.Add(await FocusedAsync(page));
            Assert.NotEqual("none", await page.EvaluateAsync<string>("getComputedStyle(document.activeElement).outlineStyle"));
        }
        var email = visited.IndexOf("input:Email");
        var password = visited.IndexOf("input:Password");
        var submit = visited.IndexOf("button:Log in");
        Assert.True(email >= 0 && email < password && password < submit, "tab order: " + string.Join(", ", visited));

        // Back to the email field and sign in with keys only.
        for (var i = 0; i < submit - email; i++)
        {
            await page.Keyboard.PressAsync("Shift+Tab");
        }
        Assert.Equal("input:Email", await FocusedAsync(page));
        await page.Keyboard.TypeAsync(gym.OwnerEmail);
        await page.Keyboard.PressAsync("Tab");
        await page.Keyboard.TypeAsync(gym.OwnerPassword);
        await page.Keyboard.PressAsync("Tab");
        await browser.ScreenshotAsync("11-keyboard-focus-on-submit");
        await page.Keyboard.PressAsync("Enter");
        await browser.ExpectPathAsync("/settings/integrations");
        browser.AssertClean();
    }

    /// <summary>A short description of the focused element: its tag and accessible label.</summary>
    private static Task<string> FocusedAsync(IPage page) => page.EvaluateAsync<string>("""
        () => {
          const e = document.activeElement;
          if (!e) return "";
          if (e.tagName === "A") return e.textContent.trim();
          const label = e.labels && e.labels.length ? e.labels[0].textContent.trim() : e.textContent.trim();
          return e.tagName.toLowerCase() + ":" + label;
        }
        """);

    private static async Task AssertNoHorizontalScrollAsync(IPage page)
    {
        var widths = await page.EvaluateAsync<int[]>("[document.documentElement.scrollWidth, window.innerWidth]");
        Assert.True(widths[0] <= widths[1], $"page is {widths[0]}px wide in a {widths[1]}px viewport");
    }
}
