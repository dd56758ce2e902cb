using System.Net;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Gymwire.Features.Email;
using Gymwire.Features.Gyms;
using Gymwire.Features.Payments;
using Gymwire.Tests.Dashboard;
using Gymwire.Tests.Infrastructure;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using MimeKit;

namespace Gymwire.Tests.Email;

/// <summary>
/// The scheduled report's form (frequency, recipients, format) and what the sender does with it: periods cut at the
/// gym's midnight, the chosen addresses, CSV files or an HTML summary.
/// </summary>
public abstract partial class ReportScheduleTests(SmtpFixture fx)
{
    public sealed class Sqlite(SqliteSmtpManualReports f) : ReportScheduleTests(f), IClassFixture<SqliteSmtpManualReports>;
    public sealed class Postgres(PostgresSmtpManualReports f) : ReportScheduleTests(f), IClassFixture<PostgresSmtpManualReports>;

    private const string Form = "/settings/integrations/accounting";

    private Task RunReportsAsync() =>
        fx.Services.GetServices<IHostedService>().OfType<ScheduledReports>().Single().RunOnceAsync(CancellationToken.None);

    private List<MimeMessage> MessagesTo(string email) =>
        fx.Smtp.Messages.Where(m => m.To.Mailboxes.Any(a => a.Address == email)).ToList();

    private Task<ReportSchedule?> ScheduleAsync(Guid gymId) =>
        fx.WithDbAsync(db => db.ReportSchedules.AsNoTracking().SingleOrDefaultAsync(s => s.GymId == gymId));

    private async Task<(TestGym Gym, DashboardClient Browser)> SignedInAsync(string zone)
    {
        var gym = await fx.CreateGymAsync("Harbor Gym");
        await fx.WithDbAsync(db => db.Gyms.Where(g => g.Id == gym.GymId).ExecuteUpdateAsync(s => s.SetProperty(g => g.TimeZone, zone)));
        var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        return (gym, browser);
    }

    [Fact]
    public async Task Saving_the_form_without_a_frequency_keeps_the_schedule_and_asks_for_one()
    {
        var (gym, browser) = await SignedInAsync("UTC");
        using (browser)
        {
            var books = $"books-{Guid.NewGuid():N}@example.com";
            await browser.FollowAsync(await browser.SubmitAsync(Form, ("Frequency", "weekly"), ("Recipients", books), ("Format", "csv")));
            // As a browser submits the form when the schedule's radio is disabled: no Frequency field at all.
            var refused = await browser.SubmitAsync(Form, ("Recipients", books), ("Format", "csv"));
            Assert.Equal(HttpStatusCode.OK, refused.StatusCode);
            Assert.Contains("Choose daily, weekly, monthly or off.", WebUtility.HtmlDecode(await refused.Content.ReadAsStringAsync()), StringComparison.Ordinal);
            Assert.Equal(ReportFrequencies.Weekly, (await ScheduleAsync(gym.GymId))?.Frequency);
        }
    }

    private Task AddPaymentAsync(Guid gymId, DateTime at, int cents) => fx.WithDbAsync(db =>
    {
        db.Payments.Add(new Payment
        {
            Id = Guid.CreateVersion7(), GymId = gymId, UserId = "user_ana", AmountCents = cents, Currency = "usd", Status = PaymentStatuses.Paid, CreatedAt = at,
            RecordedAt = at,
        });
        return db.SaveChangesAsync();
    });

    private static async Task<string> AttachmentAsync(MimeMessage report, string prefix)
    {
        var part = report.Attachments.OfType<MimePart>().Single(a => a.FileName!.StartsWith(prefix, StringComparison.Ordinal));
        using var content = new MemoryStream();
        await part.Content!.DecodeToAsync(content);
        return System.Text.Encoding.UTF8.GetString(content.ToArray());
    }

    [Fact]
    public async Task A_payment_and_a_refund_recorded_after_their_days_report_are_in_the_next_report_once()
    {
        var gym = await fx.CreateGymAsync();
        var books = $"books-{Guid.NewGuid():N}@example.com";
        await fx.WithDbAsync(async db =>
        {
            var service = new ReportScheduleService(db, fx.Clock, fx.Services.GetRequiredService<ReportSignal>());
            return await service.SaveAsync(gym.GymId, ReportFrequencies.Daily, [books], null, CancellationToken.None);
        });
        var zone = GymTimeZones.Find((await fx.WithDbAsync(db => db.Gyms.SingleAsync(g => g.Id == gym.GymId))).TimeZone);
        var start = (await ScheduleAsync(gym.GymId))!.ReportedThrough;
        var end = ReportFrequencies.Next(ReportFrequencies.Daily, start, zone);
        var day = GymTimeZones.LocalDate(start, zone);
        // Paid and recorded on the day: in its report.
        var onTime = Guid.CreateVersion7();
        await fx.WithDbAsync(db =>
        {
            PaymentService.AddPayment(db, new Payment
            {
                Id = onTime, GymId = gym.GymId, UserId = "user_ana", AmountCents = 500, Currency = "usd", Status = PaymentStatuses.Paid,
                CreatedAt = end.AddMinutes(-30), RecordedAt = end.AddMinutes(-30),
            });
            return db.SaveChangesAsync();
        });
        fx.Clock.Advance(end - fx.Clock.GetUtcNow().UtcDateTime + ScheduledReports.Grace);
        await RunReportsAsync();
        var first = Assert.Single(MessagesTo(books));
        Assert.Contains("Payments received: 1 totalling 5.00 USD.", first.TextBody, StringComparison.Ordinal);
        Assert.Contains("Refunds: none.", first.TextBody, StringComparison.Ordinal);

        // After the day's report: Stripe delivers a payment paid at 23:50 and a refund made at 23:55 (a retry after downtime).
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var late = Guid.CreateVersion7();
        await fx.WithDbAsync(async db =>
        {
            PaymentService.AddPayment(db, new Payment
            {
                Id = late, GymId = gym.GymId, UserId = "user_ana", AmountCents = 700, Currency = "usd", Status = PaymentStatuses.Paid,
                CreatedAt = end.AddMinutes(-10), RecordedAt = now,
            });
            PaymentService.RefundPayment(db, await db.Payments.SingleAsync(p => p.Id == onTime), now, refundedAt: end.AddMinutes(-5));
            return await db.SaveChangesAsync();
        });

        // In the next day's report, dated the day they happened; in no report after it.
        for (var i = 0; i < 2; i++)
        {
            fx.Clock.Advance(TimeSpan.FromDays(1));
            await RunReportsAsync();
        }
        var reports = MessagesTo(books);
        Assert.Equal(3, reports.Count);
        Assert.Contains("Payments received: 1 totalling 7.00 USD.", reports[1].TextBody, StringComparison.Ordinal);
        Assert.Contains("Refunds: 1 totalling -5.00 USD.", reports[1].TextBody, StringComparison.Ordinal);
        var payments = await AttachmentAsync(reports[1], "payments-");
        Assert.Contains($"{day:yyyy-MM-dd},user_ana,,Membership payment,7.00,USD,paid,{late}", payments, StringComparison.Ordinal);
        Assert.DoesNotContain(onTime.ToString(), payments, StringComparison.Ordinal);
        var refunds = await AttachmentAsync(reports[1], "refunds-");
        Assert.Contains($"{day:yyyy-MM-dd},user_ana,,Refund: Membership payment of {day:yyyy-MM-dd},-5.00,USD,refunded,{onTime}", refunds, StringComparison.Ordinal);
        var quickBooks = await AttachmentAsync(reports[1], "quickbooks-");
        Assert.Contains($"{day:MM/dd/yyyy},user_ana: Membership payment,7.00", quickBooks, StringComparison.Ordinal);
        Assert.Contains($"{day:MM/dd/yyyy},Refund to user_ana: Membership payment,-5.00", quickBooks, StringComparison.Ordinal);
        Assert.Contains("Payments received: none.", reports[2].TextBody, StringComparison.Ordinal);
        Assert.Contains("Refunds: none.", reports[2].TextBody, StringComparison.Ordinal);

        // A download of the day still has them by the day they happened.
        using var owner = gym.Owner();
        var download = await (await owner.GetAsync($"/api/gym/exports/payments.csv?from={day:yyyy-MM-dd}&to={day:yyyy-MM-dd}")).Content.ReadAsStringAsync();
        Assert.Contains(late.ToString(), download, StringComparison.Ordinal);
        Assert.Contains(onTime.ToString(), download, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_first_saves_of_a_schedule_at_once_both_succeed_and_keep_one_schedule()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        // Both find no schedule before either inserts one (two tabs, or a double click).
        fx.ReadBarrier.Arm("report_schedules", gym.GymId, readers: 2);
        var responses = await Task.WhenAll(new[] { "weekly", "monthly" }.Select(f => owner.PutAsJsonAsync("/api/gym/exports/schedule", new { frequency = f })));
        foreach (var response in responses)
        {
            await response.AssertStatusAsync(HttpStatusCode.OK);
        }
        var schedule = await ScheduleAsync(gym.GymId);
        Assert.NotNull(schedule);
        Assert.Contains(schedule.Frequency, new[] { "weekly", "monthly" });
    }

    [Fact]
    public async Task A_period_claimed_by_a_node_that_died_before_sending_is_sent_once_its_claim_lapses()
    {
        var gym = await fx.CreateGymAsync();
        var books = $"books-{Guid.NewGuid():N}@example.com";
        await fx.WithDbAsync(async db =>
        {
            var service = new ReportScheduleService(db, fx.Clock, fx.Services.GetRequiredService<ReportSignal>());
            return await service.SaveAsync(gym.GymId, ReportFrequencies.Daily, [books], null, CancellationToken.None);
        });
        var zone = GymTimeZones.Find((await fx.WithDbAsync(db => db.Gyms.SingleAsync(g => g.Id == gym.GymId))).TimeZone);
        var start = (await ScheduleAsync(gym.GymId))!.ReportedThrough;
        var end = ReportFrequencies.Next(ReportFrequencies.Daily, start, zone);
        fx.Clock.Advance(end - fx.Clock.GetUtcNow().UtcDateTime + ScheduledReports.Grace);
        // As a node killed between its claim and the send leaves the schedule: the period taken, nothing sent.
        var claimedUntil = fx.Clock.GetUtcNow().UtcDateTime + ScheduledReports.ClaimLease;
        await fx.WithDbAsync(db => db.ReportSchedules.Where(s => s.GymId == gym.GymId).ExecuteUpdateAsync(s => s
            .SetProperty(x => x.ReportedThrough, end).SetProperty(x => x.ClaimedFrom, start).SetProperty(x => x.ClaimedUntil, claimedUntil)));

        // While the claim may still be a live node's, no other pass sends the period.
        await RunReportsAsync();
        Assert.Empty(MessagesTo(books));

        fx.Clock.Advance(ScheduledReports.ClaimLease + TimeSpan.FromSeconds(1));
        await RunReportsAsync();
        Assert.Single(MessagesTo(books));
        var schedule = (await ScheduleAsync(gym.GymId))!;
        Assert.Equal(end, schedule.ReportedThrough);
        Assert.Null(schedule.ClaimedFrom);
        Assert.Null(schedule.ClaimedUntil);
        Assert.NotNull(schedule.LastSentAt);
        await RunReportsAsync();
        Assert.Single(MessagesTo(books));
    }

    [Fact]
    public async Task A_daily_report_covers_the_gyms_local_day_and_goes_to_the_chosen_recipients_only()
    {
        var (gym, browser) = await SignedInAsync("America/New_York");
        using var _ = browser;
        var books = $"books-{Guid.NewGuid():N}@example.com";
        var coach = $"coach-{Guid.NewGuid():N}@example.com";

        var saved = await browser.SubmitAsync(Form, ("Frequency", "daily"), ("Recipients", $"{books},\n{coach}; {books.ToUpperInvariant()}"), ("Format", "csv"));
        Assert.Equal(Form, saved.Headers.Location!.OriginalString);
        var page = WebUtility.HtmlDecode(await (await browser.FollowAsync(saved)).Content.ReadAsStringAsync());
        Assert.Contains($"Saved: a daily report (CSV files) is emailed to {books}, {coach} after ", page, StringComparison.Ordinal);
        Assert.Contains("America/New_York", page, StringComparison.Ordinal);

        var zone = GymTimeZones.Find("America/New_York");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var today = GymTimeZones.LocalDate(now, zone);
        var end = GymTimeZones.StartOfDayUtc(today.AddDays(1), zone);
        var schedule = (await ScheduleAsync(gym.GymId))!;
        Assert.Equal($"{books}, {coach}", schedule.Recipients); // the duplicate (in capitals) is dropped
        Assert.Equal(ReportFormats.Csv, schedule.Format);
        Assert.Equal(GymTimeZones.StartOfDayUtc(today, zone), schedule.ReportedThrough);
        using (var owner = gym.Owner())
        {
            var api = await (await owner.GetAsync("/api/gym/exports/schedule")).AssertStatusAsync(HttpStatusCode.OK);
            Assert.Equal(end, api.GetProperty("next_report_at").GetDateTime().ToUniversalTime());
            // The API's PUT sets the frequency and keeps the recipients and format chosen on the page.
            await (await owner.PutAsJsonAsync("/api/gym/exports/schedule", new { frequency = "daily" })).AssertStatusAsync(HttpStatusCode.OK);
            Assert.Equal($"{books}, {coach}", (await ScheduleAsync(gym.GymId))!.Recipients);
        }

        // 23:30 local is the gym's day (UTC says the next day); 00:30 local is the next one.
        await AddPaymentAsync(gym.GymId, end.AddMinutes(-30), 9900);
        await AddPaymentAsync(gym.GymId, end.AddMinutes(30), 111);
        await RunReportsAsync();
        Assert.Empty(MessagesTo(books)); // the local day has not ended

        fx.Clock.Advance(end - now + ScheduledReports.Grace);
        await RunReportsAsync();
        var report = Assert.Single(MessagesTo(books));
        Assert.Equal([books, coach], report.To.Mailboxes.Select(m => m.Address));
        Assert.Empty(MessagesTo(gym.OwnerEmail));
        Assert.Equal($"Gymwire daily report: {today:yyyy-MM-dd}", report.Subject);
        Assert.Contains($"{today:yyyy-MM-dd} (America/New_York)", report.TextBody, StringComparison.Ordinal);
        Assert.Contains("Payments received: 1 totalling 99.00 USD.", report.TextBody, StringComparison.Ordinal);
        var payments = report.Attachments.OfType<MimePart>().Single(a => a.FileName == $"payments-{today:yyyy-MM-dd}-to-{today:yyyy-MM-dd}.csv");
        using var content = new MemoryStream();
        await payments.Content!.DecodeToAsync(content);
        using var csv = CsvHelper.CsvReader.Create(new MemoryStream(content.ToArray()), new CsvHelper.CsvReaderOptions { Separator = ',' }, leaveOpen: false);
        Assert.True(csv.Read());
        Assert.Equal($"{today:yyyy-MM-dd}", csv.GetString("Date"));
        Assert.Equal("99.00", csv.GetString("Amount"));
        Assert.False(csv.Read());
        var recorded = await fx.WithDbAsync(db => db.EmailDeliveries.AsNoTracking().SingleAsync(d => d.GymId == gym.GymId && d.Kind == "report"));
        Assert.Equal($"{books}, {coach}", recorded.Recipients);
        Assert.Equal(end, (await ScheduleAsync(gym.GymId))!.ReportedThrough);
    }

    [Fact]
    public async Task Bad_recipients_or_format_are_refused_in_the_form_and_change_nothing()
    {
        var (gym, browser) = await SignedInAsync("Europe/Berlin");
        using var _ = browser;
        // With no schedule yet, the form offers the owners (naming them), and no other address.
        var blank = await browser.GetPageAsync(Form);
        Assert.Contains("id=\"send-to-owners\" name=\"SendToOwners\" value=\"true\" checked", blank, StringComparison.Ordinal);
        Assert.Contains(gym.OwnerEmail, blank, StringComparison.Ordinal);
        Assert.Contains("></textarea>", blank, StringComparison.Ordinal);

        foreach (var (recipients, format, expected) in new[]
                 {
                     ("books@example.com, not-an-email", "csv", "'not-an-email' is not an email address."),
                     ("books@example.com, Books <books@example.com>", "csv", "is not an email address."),
                     ("books@example.com\r\nBcc: evil@example.com", "csv", "'Bcc:' is not an email address."), // no header of our own
                     ("books@localhost", "csv", "'books@localhost' is not an email address."),
                     ("", "csv", "Choose the gym's owners or enter at least one email address to send the report to."),
                     (string.Join(",", Enumerable.Range(1, 21).Select(i => $"r{i}@example.com")), "csv", "at most 20 addresses"),
                     ("books@example.com", "pdf", "Choose CSV files or an HTML summary."),
                 })
        {
            var refused = await browser.SubmitAsync(Form, ("Frequency", "weekly"), ("Recipients", recipients), ("Format", format));
            Assert.Equal(HttpStatusCode.OK, refused.StatusCode);
            var html = WebUtility.HtmlDecode(await refused.Content.ReadAsStringAsync());
            Assert.Contains(expected, html, StringComparison.Ordinal);
            Assert.Contains("id=\"form-errors\"", html, StringComparison.Ordinal);
            Assert.Null(await ScheduleAsync(gym.GymId));
        }

        var books = $"books-{Guid.NewGuid():N}@example.com";
        await browser.FollowAsync(await browser.SubmitAsync(Form, ("Frequency", "daily"), ("Recipients", books), ("Format", "html")));
        var before = (await ScheduleAsync(gym.GymId))!;
        Assert.Equal((books, ReportFormats.Html, ReportFrequencies.Daily), (before.Recipients, before.Format, before.Frequency));
        var again = await browser.SubmitAsync(Form, ("Frequency", "monthly"), ("Recipients", "x@"), ("Format", "csv"));
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        var after = (await ScheduleAsync(gym.GymId))!;
        Assert.Equal((before.Recipients, before.Format, before.Frequency, before.ReportedThrough), (after.Recipients, after.Format, after.Frequency, after.ReportedThrough));
        var page = await browser.GetPageAsync(Form);
        Assert.Contains($">{books}</textarea>", page, StringComparison.Ordinal);
        Assert.Contains("id=\"format-html\" name=\"Format\" value=\"html\" checked", page, StringComparison.Ordinal);

        // The HTML summary: the totals in the email, no attachments.
        var zone = GymTimeZones.Find("Europe/Berlin");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var end = GymTimeZones.StartOfDayUtc(GymTimeZones.LocalDate(now, zone).AddDays(1), zone);
        await AddPaymentAsync(gym.GymId, end.AddMinutes(-30), 4200);
        fx.Clock.Advance(end - now + ScheduledReports.Grace);
        await RunReportsAsync();
        var report = Assert.Single(MessagesTo(books));
        Assert.Empty(report.Attachments);
        Assert.Contains("<th scope=\"row\" style=\"text-align: left; padding: 4px 12px 4px 0;\">Payments received</th><td style=\"padding: 4px 0;\">1 totalling 42.00 USD</td>",
            report.HtmlBody, StringComparison.Ordinal);
        Assert.Contains("(Europe/Berlin)", report.HtmlBody, StringComparison.Ordinal);
        Assert.Contains("Payments received: 1 totalling 42.00 USD.", report.TextBody, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_api_shows_and_sets_who_gets_the_report_its_format_and_quickbooks_dates()
    {
        var (gym, browser) = await SignedInAsync("UTC");
        using var _ = browser;
        using var owner = gym.Owner();
        var books = $"books-{Guid.NewGuid():N}@example.com";
        await browser.FollowAsync(await browser.SubmitAsync(Form, ("Frequency", "weekly"), ("SendToOwners", "true"), ("Recipients", books), ("Format", "csv")));

        // What the owner chose on the page, as the PUT takes it.
        var shown = await (await owner.GetAsync("/api/gym/exports/schedule")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.True(shown.GetProperty("send_to_owners").GetBoolean());
        Assert.Equal([books], shown.GetProperty("recipients").EnumerateArray().Select(r => r.GetString()));
        Assert.Equal("csv", shown.GetProperty("format").GetString());
        Assert.Equal("mdy", shown.GetProperty("quickbooks_date_order").GetString()); // quickbooks.csv's own default

        var coach = $"coach-{Guid.NewGuid():N}@example.com";
        var set = await (await owner.PutAsJsonAsync("/api/gym/exports/schedule",
            new { frequency = "daily", send_to_owners = false, recipients = new[] { books, coach, coach.ToUpperInvariant() }, format = "html", quickbooks_date_order = "dmy" }))
            .AssertStatusAsync(HttpStatusCode.OK);
        var again = await (await owner.GetAsync("/api/gym/exports/schedule")).AssertStatusAsync(HttpStatusCode.OK);
        foreach (var schedule in new[] { set, again })
        {
            Assert.False(schedule.GetProperty("send_to_owners").GetBoolean());
            Assert.Equal([books, coach], schedule.GetProperty("recipients").EnumerateArray().Select(r => r.GetString()));
            Assert.Equal("html", schedule.GetProperty("format").GetString());
            Assert.Equal("dmy", schedule.GetProperty("quickbooks_date_order").GetString());
        }
        var stored = (await ScheduleAsync(gym.GymId))!;
        Assert.Equal((false, $"{books}, {coach}", "html", "dmy"), (stored.SendToOwners, stored.Recipients, stored.Format, stored.QuickBooksDateOrder));

        // Each bad field is a 400 naming it, and changes nothing.
        foreach (var (body, expected) in new (object, string)[]
                 {
                     (new { frequency = "daily", recipients = new[] { "not-an-email" } }, "'recipients': 'not-an-email' is not an email address."),
                     (new { frequency = "daily", recipients = new string?[] { null } }, "'recipients': '' is not an email address."),
                     (new { frequency = "daily", recipients = Enumerable.Range(1, 21).Select(i => $"r{i}@example.com").ToArray() }, "'recipients': A report may go to at most 20 addresses."),
                     (new { frequency = "daily", format = "pdf" }, "'format' must be one of: csv, html"),
                     (new { frequency = "daily", quickbooks_date_order = "ymd" }, "'quickbooks_date_order' must be one of: mdy, dmy"),
                     // The stored addresses dropped with the owners still off: the report would go to nobody.
                     (new { frequency = "daily", recipients = Array.Empty<string>() }, "The report must go to someone"),
                 })
        {
            var error = await (await owner.PutAsJsonAsync("/api/gym/exports/schedule", body)).AssertErrorAsync(HttpStatusCode.BadRequest);
            Assert.Contains(expected, error, StringComparison.Ordinal);
            var after = (await ScheduleAsync(gym.GymId))!;
            Assert.Equal((false, $"{books}, {coach}", "html", "dmy", "daily"), (after.SendToOwners, after.Recipients, after.Format, after.QuickBooksDateOrder, after.Frequency));
        }

        // Back to the owners alone: no other address.
        var owners = await (await owner.PutAsJsonAsync("/api/gym/exports/schedule", new { frequency = "daily", send_to_owners = true, recipients = Array.Empty<string>() }))
            .AssertStatusAsync(HttpStatusCode.OK);
        Assert.True(owners.GetProperty("send_to_owners").GetBoolean());
        Assert.Empty(owners.GetProperty("recipients").EnumerateArray());
        Assert.Null((await ScheduleAsync(gym.GymId))!.Recipients);

        await (await owner.DeleteAsync("/api/gym/exports/schedule")).AssertStatusAsync(HttpStatusCode.NoContent);
        var none = await (await owner.GetAsync("/api/gym/exports/schedule")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.False(none.GetProperty("enabled").GetBoolean());
        Assert.Equal(JsonValueKind.Null, none.GetProperty("recipients").ValueKind);
    }

    [Fact]
    public async Task A_csv_report_attaches_the_quickbooks_file_in_the_schedules_date_order()
    {
        var (gym, browser) = await SignedInAsync("America/New_York");
        using var _ = browser;
        var books = $"books-{Guid.NewGuid():N}@example.com";
        // The page's choice of dates, day first, as a UK or Australian QuickBooks company reads them.
        await browser.FollowAsync(await browser.SubmitAsync(Form, ("Frequency", "daily"), ("Recipients", books), ("Format", "csv"), ("QuickBooksDateOrder", "dmy")));
        Assert.Contains("id=\"quickbooks-dates-dmy\" name=\"QuickBooksDateOrder\" value=\"dmy\" checked", await browser.GetPageAsync(Form), StringComparison.Ordinal);
        var refused = await browser.SubmitAsync(Form, ("Frequency", "daily"), ("Recipients", books), ("Format", "csv"), ("QuickBooksDateOrder", "ymd"));
        Assert.Contains("Choose the QuickBooks dates as month first or day first.", WebUtility.HtmlDecode(await refused.Content.ReadAsStringAsync()), StringComparison.Ordinal);
        Assert.Equal("dmy", (await ScheduleAsync(gym.GymId))!.QuickBooksDateOrder);

        var zone = GymTimeZones.Find("America/New_York");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var today = GymTimeZones.LocalDate(now, zone);
        var end = GymTimeZones.StartOfDayUtc(today.AddDays(1), zone);
        await AddPaymentAsync(gym.GymId, end.AddMinutes(-30), 9900);
        fx.Clock.Advance(end - now + ScheduledReports.Grace);
        await RunReportsAsync();

        var report = Assert.Single(MessagesTo(books));
        var name = $"quickbooks-{today:yyyy-MM-dd}-to-{today:yyyy-MM-dd}.csv";
        var file = report.Attachments.OfType<MimePart>().Single(a => a.FileName == name);
        Assert.Equal("text/csv", file.ContentType.MimeType);
        using var content = new MemoryStream();
        await file.Content!.DecodeToAsync(content);
        using var csv = CsvHelper.CsvReader.Create(new MemoryStream(content.ToArray()), new CsvHelper.CsvReaderOptions { Separator = ',' }, leaveOpen: false);
        Assert.True(csv.Read());
        Assert.Equal(["Date", "Description", "Amount"], csv.Headers);
        Assert.Equal(today.ToString("dd/MM/yyyy", CultureInfo.InvariantCulture), csv.GetString("Date"));
        Assert.Equal("99.00", csv.GetString("Amount"));
        Assert.False(csv.Read());
        Assert.Contains("with its dates DD/MM/YYYY", report.TextBody, StringComparison.Ordinal);
    }

    /// <summary>Submits the form as a browser does with what the page offers, changing only <paramref name="changes"/>.</summary>
    private static async Task<HttpResponseMessage> SubmitAsOfferedAsync(DashboardClient browser, params (string Name, string Value)[] changes)
    {
        var page = await browser.GetPageAsync(Form);
        var fields = new List<(string Name, string Value)>
        {
            ("Recipients", WebUtility.HtmlDecode(OfferedRecipients().Match(page).Groups["value"].Value)),
            ("Format", ReportFormats.Csv),
        };
        if (OfferedOwners().IsMatch(page))
        {
            fields.Add(("SendToOwners", "true"));
        }
        fields.RemoveAll(f => changes.Any(c => c.Name == f.Name));
        return await browser.SubmitAsync(Form, [.. fields, .. changes]);
    }

    [GeneratedRegex(@"<textarea id=""recipients""[^>]*>(?<value>[^<]*)</textarea>")]
    private static partial Regex OfferedRecipients();

    [GeneratedRegex(@"<input type=""checkbox"" id=""send-to-owners""[^>]*\bchecked")]
    private static partial Regex OfferedOwners();

    private async Task<string> AddOwnerAsync(TestGym gym)
    {
        var email = $"partner-{Guid.NewGuid():N}@example.com";
        await using var scope = fx.Services.CreateAsyncScope();
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var created = await scope.ServiceProvider.GetRequiredService<UserManager<Owner>>().CreateAsync(
            new Owner { Id = Guid.CreateVersion7(now), GymId = gym.GymId, Email = email, UserName = email, CreatedAt = now }, "a-partners-password-1");
        Assert.True(created.Succeeded, string.Join("; ", created.Errors.Select(e => e.Description)));
        return email;
    }

    private async Task RunNextDailyReportAsync(Guid gymId)
    {
        var schedule = (await ScheduleAsync(gymId))!;
        var end = ReportFrequencies.Next(schedule.Frequency, schedule.ReportedThrough, TimeZoneInfo.Utc);
        var wait = end + ScheduledReports.Grace - fx.Clock.GetUtcNow().UtcDateTime;
        if (wait > TimeSpan.Zero)
        {
            fx.Clock.Advance(wait);
        }
        await RunReportsAsync();
    }

    [Fact]
    public async Task The_form_saved_as_offered_sends_to_the_owners_at_send_time_including_one_added_later()
    {
        var (gym, browser) = await SignedInAsync("UTC");
        using var _ = browser;
        Assert.Equal(Form, (await SubmitAsOfferedAsync(browser, ("Frequency", "daily"))).Headers.Location!.OriginalString);
        var partner = await AddOwnerAsync(gym);

        await RunNextDailyReportAsync(gym.GymId);
        Assert.Single(MessagesTo(gym.OwnerEmail));
        Assert.Single(MessagesTo(partner)); // an owner since the save gets it: "the owners" stayed the owners

        // Another address besides the owners: all of them, in one message.
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword); // the day that passed ended the session
        var books = $"books-{Guid.NewGuid():N}@example.com";
        await browser.FollowAsync(await SubmitAsOfferedAsync(browser, ("Frequency", "daily"), ("Recipients", books)));
        Assert.Contains($"The gym's owners and {books}", WebUtility.HtmlDecode(await browser.GetPageAsync(Form)), StringComparison.OrdinalIgnoreCase);
        await RunNextDailyReportAsync(gym.GymId);
        var report = Assert.Single(MessagesTo(books));
        Assert.Equal(new[] { gym.OwnerEmail, partner, books }.Order(), report.To.Mailboxes.Select(m => m.Address).Order());
    }

    [Fact]
    public async Task A_report_sent_after_a_failed_one_leaves_no_failure_on_the_page()
    {
        var (gym, browser) = await SignedInAsync("UTC");
        using var signedIn = browser;
        var books = $"books-{Guid.NewGuid():N}@example.com";
        await browser.FollowAsync(await browser.SubmitAsync(Form, ("Frequency", "daily"), ("Recipients", books), ("Format", "csv")));

        // The only recipient refused: the send fails, and the period waits for the next pass.
        fx.Smtp.RefusedRecipients[books] = true;
        try
        {
            await RunNextDailyReportAsync(gym.GymId);
        }
        finally
        {
            fx.Smtp.RefusedRecipients.TryRemove(books, out _);
        }
        Assert.Empty(MessagesTo(books));
        var failed = (await ScheduleAsync(gym.GymId))!;
        Assert.NotNull(failed.LastFailureAt);
        Assert.Contains(books, failed.LastFailure, StringComparison.Ordinal);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword); // the day that passed ended the session
        Assert.Contains("<dt>Last failure</dt>", await browser.GetPageAsync(Form), StringComparison.Ordinal);

        // The next pass sends the period: the failure is over, and the page says nothing of it (not a time without a reason).
        await RunReportsAsync();
        Assert.Single(MessagesTo(books));
        var sent = (await ScheduleAsync(gym.GymId))!;
        Assert.NotNull(sent.LastSentAt);
        Assert.Null(sent.LastFailureAt);
        Assert.Null(sent.LastFailure);
        var page = await browser.GetPageAsync(Form);
        Assert.DoesNotContain("Last failure", page, StringComparison.Ordinal);
        Assert.Contains("<span class=\"badge connected\">Connected</span>", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Changing_the_frequency_mid_period_reports_every_day_exactly_once()
    {
        var gym = await fx.CreateGymAsync();
        await fx.WithDbAsync(db => db.Gyms.Where(g => g.Id == gym.GymId).ExecuteUpdateAsync(s => s.SetProperty(g => g.TimeZone, "America/New_York")));
        var zone = GymTimeZones.Find("America/New_York");
        DateOnly Today() => GymTimeZones.LocalDate(fx.Clock.GetUtcNow().UtcDateTime, zone);
        // Logged in afresh each time: the weeks this test steps through outlast a session.
        async Task SetAsync(string frequency)
        {
            using var anonymous = fx.Client();
            var login = await (await anonymous.PostAsJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = gym.OwnerPassword })).AssertStatusAsync(HttpStatusCode.OK);
            using var owner = fx.Client(login.GetProperty("token").GetString());
            await (await owner.PutAsJsonAsync("/api/gym/exports/schedule", new { frequency })).AssertStatusAsync(HttpStatusCode.OK);
        }
        // A day later, and as many passes as send something (a report behind catches up one period per pass).
        async Task StepUntilAsync(Func<DateOnly, bool> done)
        {
            do
            {
                fx.Clock.Advance(TimeSpan.FromDays(1));
                for (var before = -1; before != MessagesTo(gym.OwnerEmail).Count;)
                {
                    before = MessagesTo(gym.OwnerEmail).Count;
                    await RunReportsAsync();
                }
            }
            while (!done(Today()));
        }

        await SetAsync(ReportFrequencies.Weekly);
        var first = Today().AddDays(-(((int)Today().DayOfWeek + 6) % 7));
        await StepUntilAsync(d => d.DayOfWeek == DayOfWeek.Thursday && d > first.AddDays(1));
        await SetAsync(ReportFrequencies.Daily); // Monday to Wednesday are not reported yet
        await StepUntilAsync(d => d.DayOfWeek == DayOfWeek.Saturday);
        await SetAsync(ReportFrequencies.Weekly); // a week that began with daily reports
        await StepUntilAsync(d => d.Day == 12);
        await SetAsync(ReportFrequencies.Monthly); // from a Monday to the month's end
        await StepUntilAsync(d => d.Day == 1);
        await StepUntilAsync(d => d.Day == 17);
        await SetAsync(ReportFrequencies.Weekly); // since the 1st, so the earlier weeks of the month are still to come
        await StepUntilAsync(d => d.Day == 24);
        await SetAsync(ReportFrequencies.Daily);
        await StepUntilAsync(d => d.Day == 27);

        var reports = MessagesTo(gym.OwnerEmail).Select(m => Period().Match(m.Subject ?? "")).ToList();
        Assert.All(reports, r => Assert.True(r.Success));
        var days = new List<DateOnly>();
        foreach (var r in reports)
        {
            var from = DateOnly.Parse(r.Groups["from"].Value, CultureInfo.InvariantCulture);
            var to = r.Groups["to"].Success ? DateOnly.Parse(r.Groups["to"].Value, CultureInfo.InvariantCulture) : from;
            // Whatever the change, a weekly report ends on a Sunday and a monthly one at the month's end.
            if (r.Groups["frequency"].Value == ReportFrequencies.Weekly)
            {
                Assert.Equal(DayOfWeek.Sunday, to.DayOfWeek);
            }
            if (r.Groups["frequency"].Value == ReportFrequencies.Monthly)
            {
                Assert.Equal(1, to.AddDays(1).Day);
            }
            for (var d = from; d <= to; d = d.AddDays(1))
            {
                days.Add(d);
            }
        }
        var everyDay = Enumerable.Range(0, Today().DayNumber - first.DayNumber).Select(first.AddDays).ToList();
        Assert.Equal(everyDay, days.Order());
    }

    [GeneratedRegex(@"^Gymwire (?<frequency>\w+) report: (?<from>\d{4}-\d{2}-\d{2})( to (?<to>\d{4}-\d{2}-\d{2}))?$")]
    private static partial Regex Period();

    [Fact]
    public void Report_periods_are_local_days_of_23_and_25_hours_where_the_clocks_change()
    {
        var newYork = GymTimeZones.Find("America/New_York");
        var start = ReportFrequencies.PeriodStart(ReportFrequencies.Daily, new DateTime(2026, 3, 9, 3, 30, 0, DateTimeKind.Utc), newYork); // 23:30 on the 8th
        Assert.Equal(new DateTime(2026, 3, 8, 5, 0, 0, DateTimeKind.Utc), start);
        Assert.Equal(new DateTime(2026, 3, 9, 4, 0, 0, DateTimeKind.Utc), ReportFrequencies.Next(ReportFrequencies.Daily, start, newYork));
        var berlin = GymTimeZones.Find("Europe/Berlin");
        var week = ReportFrequencies.PeriodStart(ReportFrequencies.Weekly, new DateTime(2026, 10, 25, 22, 30, 0, DateTimeKind.Utc), berlin); // Sunday 23:30
        Assert.Equal(new DateTime(2026, 10, 18, 22, 0, 0, DateTimeKind.Utc), week); // Monday 19th, 00:00 CEST
        Assert.Equal(new DateTime(2026, 10, 25, 23, 0, 0, DateTimeKind.Utc), ReportFrequencies.Next(ReportFrequencies.Weekly, week, berlin)); // Monday 26th, 00:00 CET
        // A boundary left from another zone counts from the local day it falls on: nothing is skipped.
        var utcMidnight = new DateTime(2026, 4, 16, 0, 0, 0, DateTimeKind.Utc); // 20:00 on the 15th in New York
        Assert.Equal(new DateTime(2026, 4, 16, 4, 0, 0, DateTimeKind.Utc), ReportFrequencies.Next(ReportFrequencies.Daily, utcMidnight, newYork));
    }
}
