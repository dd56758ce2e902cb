using System.Globalization;
using System.Text;
using Gymwire.Features.Email;
using Gymwire.Features.Payments;
using Gymwire.Tests.Email;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

/// <summary>A Gymwire with an SMTP server, so the scheduled report's form can be saved.</summary>
public sealed class ReportsGymwire() : GymwireFixture(Store.Sqlite), IAsyncLifetime
{
    public SmtpStandIn Smtp { get; } = new();

    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        new("Email:Smtp:Host", "127.0.0.1"),
        new("Email:Smtp:Port", Smtp.Port.ToString(CultureInfo.InvariantCulture)),
        new("Email:Smtp:From", "Gymwire <reports@gymwire.test>"),
        new("Email:Smtp:UseTls", "false"),
        new("Reports:Enabled", "false"),
    ];

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        Smtp.Dispose();
    }
}

/// <summary>The gym's time zone in Chromium: set in Settings, shown on the pages, followed by exports; the report form.</summary>
[Collection(BrowserCollection.Name)]
public sealed class TimeZoneTests(Chromium chromium, ReportsGymwire fx) : IClassFixture<ReportsGymwire>
{
    private static ILocator Nav(IPage page, string name) =>
        page.GetByRole(AriaRole.Navigation, new() { Name = "Dashboard" }).GetByRole(AriaRole.Link, new() { Name = name, Exact = true });

    private Task SetZoneAsync(Guid gymId, string zone) =>
        fx.WithDbAsync(db => db.Gyms.Where(g => g.Id == gymId).ExecuteUpdateAsync(s => s.SetProperty(g => g.TimeZone, zone)));

    [Fact]
    public async Task Owner_sets_the_time_zone_in_settings_and_sees_times_in_it()
    {
        var gym = await fx.CreateGymAsync("Harbor Boxing");
        using (var owner = gym.Owner())
        {
            await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Books", scopes = new[] { "read" } })).AssertStatusAsync(System.Net.HttpStatusCode.Created);
        }
        var created = await fx.WithDbAsync(db => db.ApiKeys.Where(k => k.GymId == gym.GymId).Select(k => k.CreatedAt).SingleAsync());
        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);

        await Nav(page, "API Keys").ClickAsync();
        var createdCell = page.Locator("table.list tbody tr td[data-label=Created]");
        await Assertions.Expect(createdCell).ToHaveTextAsync(created.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) + " UTC");

        await Nav(page, "Gym").ClickAsync();
        await browser.ExpectPathAsync("/settings/gym");
        await Assertions.Expect(page.Locator("#current-time-zone")).ToHaveTextAsync("UTC");
        await page.GetByLabel("Time zone", new() { Exact = true }).SelectOptionAsync("America/New_York");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Time zone set to America/New_York.");
        await Assertions.Expect(page.Locator("#current-time-zone")).ToHaveTextAsync("America/New_York");
        await Assertions.Expect(page.GetByLabel("Time zone", new() { Exact = true })).ToHaveValueAsync("America/New_York");
        await Accessibility.CheckAsync(browser, "tz-01-gym-settings");

        var newYork = TimeZoneInfo.FindSystemTimeZoneById("America/New_York");
        await Nav(page, "API Keys").ClickAsync();
        await Assertions.Expect(createdCell).ToHaveTextAsync(
            TimeZoneInfo.ConvertTimeFromUtc(created, newYork).ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) + " America/New_York");
        await Accessibility.CheckAsync(browser, "tz-02-api-keys");

        await Nav(page, "Activity").ClickAsync();
        await Assertions.Expect(page.GetByText("Times are in America/New_York")).ToBeVisibleAsync();
        await Accessibility.CheckAsync(browser, "tz-03-activity");
        browser.AssertClean();
    }

    [Fact]
    public async Task The_export_from_the_page_cuts_days_at_the_gyms_midnight_on_a_daylight_saving_day()
    {
        var gym = await fx.CreateGymAsync("Midnight Judo");
        await SetZoneAsync(gym.GymId, "America/New_York");
        // 8 March 2026 in New York has 23 hours (02:00 EST becomes 03:00 EDT).
        await fx.WithDbAsync(db =>
        {
            foreach (var (at, cents) in new[]
                     {
                         (new DateTime(2026, 3, 8, 4, 30, 0, DateTimeKind.Utc), 101), // 23:30 on the 7th
                         (new DateTime(2026, 3, 8, 5, 30, 0, DateTimeKind.Utc), 102), // 00:30 on the 8th
                         (new DateTime(2026, 3, 9, 3, 30, 0, DateTimeKind.Utc), 103), // 23:30 on the 8th (UTC: the 9th)
                         (new DateTime(2026, 3, 9, 4, 30, 0, DateTimeKind.Utc), 104), // 00:30 on the 9th
                     })
            {
                db.Payments.Add(new Payment { Id = Guid.CreateVersion7(), GymId = gym.GymId, UserId = "user_ana", AmountCents = cents, Currency = "usd", Status = PaymentStatuses.Paid, CreatedAt = at });
            }
            return db.SaveChangesAsync();
        });
        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        await Nav(page, "Exports").ClickAsync();
        await Assertions.Expect(page.Locator("#export-zone")).ToHaveTextAsync("America/New_York");
        await page.GetByLabel("From", new() { Exact = true }).FillAsync("2026-03-08");
        await page.GetByLabel("To", new() { Exact = true }).FillAsync("2026-03-08");
        await Accessibility.CheckAsync(browser, "tz-04-exports");

        var download = await page.RunAndWaitForDownloadAsync(() => page.GetByRole(AriaRole.Button, new() { Name = "Download payments CSV" }).ClickAsync());
        Assert.Equal("payments-2026-03-08-to-2026-03-08.csv", download.SuggestedFilename);
        var path = await download.PathAsync();
        var lines = (await File.ReadAllTextAsync(path, Encoding.UTF8)).TrimStart('\uFEFF').Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("Date,Customer", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("2026-03-08,", lines[1], StringComparison.Ordinal);
        Assert.Contains(",1.02,", lines[1], StringComparison.Ordinal);
        Assert.StartsWith("2026-03-08,", lines[2], StringComparison.Ordinal);
        Assert.Contains(",1.03,", lines[2], StringComparison.Ordinal); // 23:30 local: the 8th, though UTC says the 9th

        // A download leaves the page where it was: every button still works, the same one again included.
        foreach (var (button, file) in new[] { ("Download members CSV", "members-2026-03-08-to-2026-03-08.csv"), ("Download payments CSV", "payments-2026-03-08-to-2026-03-08.csv") })
        {
            await Assertions.Expect(page.GetByRole(AriaRole.Button, new() { Name = button })).ToBeEnabledAsync();
            var next = await page.RunAndWaitForDownloadAsync(() => page.GetByRole(AriaRole.Button, new() { Name = button }).ClickAsync(), new() { Timeout = 10_000 });
            Assert.Equal(file, next.SuggestedFilename);
        }
        await Assertions.Expect(page.Locator("button[aria-busy]")).ToHaveCountAsync(0);
        browser.AssertClean();
    }

    [Fact]
    public async Task Owner_chooses_report_recipients_and_format_and_a_bad_email_is_refused_in_the_form()
    {
        var gym = await fx.CreateGymAsync("Ledger Karate");
        await SetZoneAsync(gym.GymId, "Europe/Berlin");
        await using var browser = await DashboardPage.OpenAsync(chromium, fx);
        var page = browser.Page;
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        await page.GotoAsync("/settings/integrations/accounting");
        // The owners are a choice of their own (whoever they are when a report goes out), ticked at first.
        var owners = page.GetByLabel("The gym's owners");
        await Assertions.Expect(owners).ToBeCheckedAsync();
        var sendTo = page.GetByLabel("Other addresses");
        await Assertions.Expect(sendTo).ToHaveValueAsync("");

        await owners.UncheckAsync();
        await page.GetByLabel("Weekly").CheckAsync();
        await sendTo.FillAsync("books@example.com\nnot-an-email");
        await page.GetByLabel("HTML summary").CheckAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToHaveTextAsync("'not-an-email' is not an email address.");
        await Assertions.Expect(sendTo).ToHaveAttributeAsync("aria-invalid", "true");
        await Assertions.Expect(sendTo).ToHaveValueAsync("books@example.com\nnot-an-email"); // what was typed stays, to fix
        Assert.False(await fx.WithDbAsync(db => db.ReportSchedules.AnyAsync(s => s.GymId == gym.GymId)));
        await Accessibility.CheckAsync(browser, "tz-05-report-form-error");

        await sendTo.FillAsync("books@example.com\naccountant@example.com");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await browser.ExpectPathAsync("/settings/integrations/accounting");
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync(
            "Saved: a weekly report (HTML summary) is emailed to books@example.com, accountant@example.com after ");
        await Assertions.Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Europe/Berlin");
        await Assertions.Expect(page.Locator("#schedule-facts")).ToContainTextAsync("books@example.com, accountant@example.com");
        await Assertions.Expect(page.GetByLabel("HTML summary")).ToBeCheckedAsync();
        var schedule = await fx.WithDbAsync(db => db.ReportSchedules.AsNoTracking().SingleAsync(s => s.GymId == gym.GymId));
        Assert.Equal(("books@example.com, accountant@example.com", ReportFormats.Html, ReportFrequencies.Weekly), (schedule.Recipients, schedule.Format, schedule.Frequency));
        await Accessibility.CheckAsync(browser, "tz-06-report-form-saved");
        browser.AssertClean();
    }
}
