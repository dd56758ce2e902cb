using System.Net;
using System.Text.RegularExpressions;
using Gymwire.Tests.Email;
using Gymwire.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

/// <summary>A Gymwire with an OpenID Connect provider, an SMTP server for reset links, and a low sign-in lockout.</summary>
public sealed class AccountGymwire() : GymwireFixture(Store.Sqlite), IAsyncLifetime
{
    public SmtpStandIn Smtp { get; } = new();

    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        .. OidcProvider.Instance.Settings(),
        new("Email:Smtp:Host", "127.0.0.1"),
        new("Email:Smtp:Port", Smtp.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        new("Email:Smtp:From", "Gymwire <reports@gymwire.test>"),
        new("Email:Smtp:UseTls", "false"),
        new("Auth:MaxFailedAttempts", "3"),
    ];

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        Smtp.Dispose();
    }
}

/// <summary>The account flows in Chromium: OpenID Connect sign-in, throttled logins, password change and reset, the 404 page.</summary>
[Collection(BrowserCollection.Name)]
public sealed partial class AccountTests(Chromium chromium, AccountGymwire fx) : IClassFixture<AccountGymwire>
{
    [Fact]
    public async Task Owner_signs_in_with_the_openid_connect_provider()
    {
        var gym = await fx.CreateGymAsync("Provider Boxing");
        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await page.GotoAsync("/login");
        await Axe.AssertNoSeriousViolationsAsync(page);
        await browser.ScreenshotAsync("account-01-login-with-provider");

        await page.GetByRole(AriaRole.Link, new() { Name = "Sign in with Test Provider" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Test provider" })).ToBeVisibleAsync();
        await page.GetByLabel("Provider email").FillAsync(gym.OwnerEmail);
        await page.GetByRole(AriaRole.Button, new() { Name = "Continue" }).ClickAsync();
        await browser.ExpectPathAsync("/settings/integrations");
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Integrations", Level = 1 })).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator(".gym-name")).ToHaveTextAsync("Provider Boxing");
        await browser.ScreenshotAsync("account-02-signed-in-with-provider");

        // An identity no owner has comes back to the login page with a plain explanation.
        await using var stranger = await DashboardPage.OpenAsync(chromium, fx);
        await stranger.Page.GotoAsync("/login");
        await stranger.Page.GetByRole(AriaRole.Link, new() { Name = "Sign in with Test Provider" }).ClickAsync();
        await stranger.Page.GetByLabel("Provider email").FillAsync($"stranger-{Guid.NewGuid():N}@example.com");
        await stranger.Page.GetByRole(AriaRole.Button, new() { Name = "Continue" }).ClickAsync();
        await stranger.ExpectPathAsync("/login?oidc=unknown");
        await Assertions.Expect(stranger.Page.GetByRole(AriaRole.Alert)).ToContainTextAsync("No owner account matches that Test Provider account");
        await stranger.Page.GotoAsync("/settings/integrations");
        Assert.StartsWith("/login", stranger.CurrentPath, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Failed_logins_are_throttled_with_the_wait_shown()
    {
        var gym = await fx.CreateGymAsync();
        await using var browser = await DashboardPage.OpenAsync(chromium, fx, width: 375, height: 812);
        var page = browser.Page;
        await page.GotoAsync("/login");
        for (var attempt = 1; attempt <= 4; attempt++)
        {
            await page.GetByLabel("Email").FillAsync(gym.OwnerEmail);
            await page.GetByLabel("Password").FillAsync("not-the-password");
            await page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();
            await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToHaveTextAsync(attempt < 4 ? "Invalid email or password." : "Too many attempts, try again in 15 minutes.");
        }
        // Locked, the right password is refused too, until the lock ends (the fake clock), and never for good.
        await page.GetByLabel("Email").FillAsync(gym.OwnerEmail);
        await page.GetByLabel("Password").FillAsync(gym.OwnerPassword);
        await page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToHaveTextAsync(new Regex("Too many attempts, try again in 1[45] minutes\\."));
        await Axe.AssertNoSeriousViolationsAsync(page);
        await browser.ScreenshotAsync("account-03-phone-login-throttled");
        fx.Clock.Advance(TimeSpan.FromMinutes(15));
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
    }

    [Fact]
    public async Task Owner_changes_the_password_then_resets_it_by_email()
    {
        var gym = await fx.CreateGymAsync();
        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        await page.GotoAsync("/settings/security");
        await page.GetByLabel("Current password").FillAsync(gym.OwnerPassword);
        await page.GetByRole(AriaRole.Textbox, new() { Name = "New password", Exact = true }).FillAsync("changed-password-1");
        await page.GetByRole(AriaRole.Button, new() { Name = "Change password" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Your password was changed");
        await Axe.AssertNoSeriousViolationsAsync(page);
        await browser.ScreenshotAsync("account-04-password-changed");
        await page.GetByRole(AriaRole.Button, new() { Name = "Log out" }).ClickAsync();
        await browser.ExpectPathAsync("/login");

        await page.GetByRole(AriaRole.Link, new() { Name = "Forgot your password?" }).ClickAsync();
        await browser.ExpectPathAsync("/forgot-password");
        await Axe.AssertNoSeriousViolationsAsync(page);
        await browser.ScreenshotAsync("account-05-forgot-password");
        await page.GetByLabel("Email").FillAsync(gym.OwnerEmail);
        // The link is mailed after the page answers.
        var mailed = fx.Smtp.NextAsync(m => m.To.Mailboxes.Any(a => a.Address == gym.OwnerEmail));
        await page.GetByRole(AriaRole.Button, new() { Name = "Send reset link" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("a link to reset its password is on its way");
        await browser.ScreenshotAsync("account-06-reset-link-sent");

        var mail = await mailed.WaitAsync(TimeSpan.FromSeconds(30));
        var link = LinkPattern().Match(mail.TextBody ?? "").Value;
        await page.GotoAsync(link);
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Choose a new password" })).ToBeVisibleAsync();
        await Axe.AssertNoSeriousViolationsAsync(page);
        await browser.ScreenshotAsync("account-07-reset-password");
        await page.GetByRole(AriaRole.Textbox, new() { Name = "New password", Exact = true }).FillAsync("reset-password-22");
        await page.GetByRole(AriaRole.Button, new() { Name = "Set new password" }).ClickAsync();
        await browser.ExpectPathAsync("/login?reset=done");
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Your password was changed");
        await browser.ScreenshotAsync("account-08-login-after-reset");
        browser.AssertClean();

        // The link worked once (the page answers 400 now, which Chromium logs as a console error).
        await page.GotoAsync(link);
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("invalid, expired or already used");
        await browser.LoginAsync(gym.OwnerEmail, "reset-password-22");
    }

    [Fact]
    public async Task An_unknown_page_shows_the_dashboards_404_on_desktop_and_phone()
    {
        foreach (var (width, height, name) in new[] { (1280, 800, "desktop"), (375, 812, "phone") })
        {
            await using var browser = await DashboardPage.OpenAsync(chromium, fx, width, height);
            var page = browser.Page;
            var response = await page.GotoAsync("/no/such/page?x=1");
            Assert.Equal((int)HttpStatusCode.NotFound, response!.Status);
            await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Page not found", Level = 1 })).ToBeVisibleAsync();
            await Assertions.Expect(page.Locator("main code")).ToHaveTextAsync("/no/such/page");
            await Axe.AssertNoSeriousViolationsAsync(page);
            await browser.ScreenshotAsync($"account-09-not-found-{name}");
        }
    }

    [GeneratedRegex(@"http://\S+/reset-password\?token=\S+")]
    private static partial Regex LinkPattern();
}
