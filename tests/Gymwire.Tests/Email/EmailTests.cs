using System.Data.Common;
using System.Net;
using System.Net.Http.Json;
using Gymwire.Features.Dashboard.Integrations;
using Gymwire.Features.Email;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using MimeKit;

namespace Gymwire.Tests.Email;

public abstract class SmtpFixture(Store store) : GymwireFixture(store), IAsyncLifetime
{
    public SmtpStandIn Smtp { get; } = new();

    protected override IEnumerable<KeyValuePair<string, string>> Settings() => Smtp.Settings();

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        Smtp.Dispose();
    }
}

public sealed class SqliteSmtp() : SmtpFixture(Store.Sqlite);

public sealed class PostgresSmtp() : SmtpFixture(Store.Postgres);

public abstract class EmailTests(SmtpFixture fx)
{
    public sealed class Sqlite(SqliteSmtp f) : EmailTests(f), IClassFixture<SqliteSmtp>;
    public sealed class Postgres(PostgresSmtp f) : EmailTests(f), IClassFixture<PostgresSmtp>;

    private async Task<IntegrationStatus> TileAsync(string key, Guid gymId)
    {
        await using var scope = fx.Services.CreateAsyncScope();
        var tiles = scope.ServiceProvider.GetRequiredService<IntegrationTiles>();
        return await tiles.StatusAsync(tiles.Find(key)!, gymId, CancellationToken.None);
    }

    private async Task<T> WithNotificationsAsync<T>(Func<OwnerNotifications, Task<T>> action)
    {
        await using var scope = fx.Services.CreateAsyncScope();
        return await action(scope.ServiceProvider.GetRequiredService<OwnerNotifications>());
    }

    private List<MimeMessage> MessagesTo(string email) =>
        fx.Smtp.Messages.Where(m => m.To.Mailboxes.Any(a => a.Address == email)).ToList();

    private Task RunReportsAsync() =>
        fx.Services.GetServices<IHostedService>().OfType<ScheduledReports>().Single().RunOnceAsync(CancellationToken.None);

    [Fact]
    public async Task A_webhook_disabled_notification_is_emailed_to_the_owner_through_smtp()
    {
        var gym = await fx.CreateGymAsync();
        Assert.True(await WithNotificationsAsync(n => n.WebhookDisabledAsync(gym.GymId, "https://hooks.example.com/x", "10 deliveries in a row failed", CancellationToken.None)));
        var message = Assert.Single(MessagesTo(gym.OwnerEmail));
        Assert.Equal("Gymwire disabled a failing webhook", message.Subject);
        Assert.Equal("reports@gymwire.test", message.From.Mailboxes.Single().Address);
        Assert.Contains("https://hooks.example.com/x", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("10 deliveries in a row failed", message.TextBody, StringComparison.Ordinal);
        var tile = await TileAsync("email", gym.GymId);
        Assert.Equal(IntegrationState.Connected, tile.State);
        Assert.Contains("Last email sent", tile.Reason, StringComparison.Ordinal);
    }

    /// <summary>A refusal (554), and a server that wants a login Gymwire was not given (530).</summary>
    [Theory]
    [InlineData("554", "554")]
    [InlineData("530", "Email:Smtp:Username")]
    public async Task A_refused_email_is_recorded_shown_on_the_tile_and_never_thrown_at_the_caller(string code, string reason)
    {
        var gym = await fx.CreateGymAsync();
        Interlocked.Exchange(ref code == "530" ? ref fx.Smtp.RequireLoginNext : ref fx.Smtp.RejectNext, 1);
        Assert.False(await WithNotificationsAsync(n => n.NotifyAsync(gym.GymId, "Hello", "Body", CancellationToken.None)));
        Assert.Empty(MessagesTo(gym.OwnerEmail));
        var delivery = await fx.WithDbAsync(db => db.EmailDeliveries.SingleAsync(d => d.GymId == gym.GymId));
        Assert.Equal("failed", delivery.Status);
        Assert.Contains(code, delivery.Error, StringComparison.Ordinal);
        var tile = await TileAsync("email", gym.GymId);
        Assert.Equal(IntegrationState.Error, tile.State);
        Assert.Contains(reason, tile.Reason, StringComparison.Ordinal);
        // The Email page says what its tile says, not merely that the server has SMTP.
        using var browser = new Gymwire.Tests.Dashboard.DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var page = WebUtility.HtmlDecode(await browser.GetPageAsync("/settings/integrations/email"));
        Assert.Contains("<span class=\"badge error\">Error</span>", page, StringComparison.Ordinal);
        Assert.DoesNotContain("<span class=\"badge connected\">Connected</span>", page, StringComparison.Ordinal);
        Assert.Contains($"<p id=\"integration-status\">{tile.Reason}</p>", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Set_up_mistakes_the_server_shows_are_email_failures_with_a_reason()
    {
        var message = new EmailMessage(["someone@example.com"], "Hello", "Body");
        // TLS asked for where the server offers no STARTTLS; a username where it offers no AUTH.
        foreach (var (set, expected) in new (Action<SmtpOptions>, string)[]
                 {
                     (o => o.UseTls = true, "STARTTLS"),
                     (o => (o.Username, o.Password) = ("gymwire", "secret-password"), "authentication"),
                 })
        {
            var failure = await Assert.ThrowsAsync<EmailException>(() => Sender(set).SendAsync(message, CancellationToken.None));
            Assert.Contains(expected, failure.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("secret-password", failure.Message, StringComparison.Ordinal);
        }
        // The caller's own cancellation stays a cancellation.
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Sender(_ => { }).SendAsync(message, cancelled.Token));
    }

    private SmtpEmailSender Sender(Action<SmtpOptions> set)
    {
        var smtp = new SmtpOptions { Host = "127.0.0.1", Port = fx.Smtp.Port, From = "reports@gymwire.test", UseTls = false, Timeout = TimeSpan.FromSeconds(20) };
        set(smtp);
        return new SmtpEmailSender(Options.Create(new EmailOptions { Smtp = smtp }), fx.Services.GetRequiredService<EmailMetrics>(), fx.Clock);
    }

    [Fact]
    public async Task A_server_that_answers_each_command_within_the_timeout_is_cut_off_at_the_timeout_for_the_conversation()
    {
        // Each answer comes a second late, within MailKit's per-read timeout of two: the whole conversation takes six.
        using var slow = new SmtpStandIn { AnswerDelay = TimeSpan.FromSeconds(1) };
        var smtp = new SmtpOptions { Host = "127.0.0.1", Port = slow.Port, From = "reports@gymwire.test", UseTls = false, Timeout = TimeSpan.FromSeconds(2) };
        // The real clock: the stand-in's delays are real socket time.
        var sender = new SmtpEmailSender(Options.Create(new EmailOptions { Smtp = smtp }), fx.Services.GetRequiredService<EmailMetrics>(), TimeProvider.System);
        var started = TimeProvider.System.GetTimestamp();
        var failure = await Assert.ThrowsAsync<EmailException>(() => sender.SendAsync(new EmailMessage(["someone@example.com"], "Hello", "Body"), CancellationToken.None));
        var took = TimeProvider.System.GetElapsedTime(started);
        Assert.Contains("did not answer in time", failure.Message, StringComparison.Ordinal);
        Assert.True(took < TimeSpan.FromSeconds(4), $"took {took}");
        Assert.Empty(slow.Messages);
    }

    [Fact]
    public async Task A_weekly_report_emails_the_csv_exports_of_the_week_at_its_end_once()
    {
        var gym = await fx.CreateGymAsync("Report Gym");
        var owner = gym.Owner();
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Ana Silva", email = "ana@example.com", user_id = "user_ana" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_ana", amount_cents = 9900 })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_ana", amount_cents = 2550 })).AssertStatusAsync(HttpStatusCode.Created);

        var schedule = await (await owner.PutAsJsonAsync("/api/gym/exports/schedule", new { frequency = "weekly" })).AssertStatusAsync(HttpStatusCode.OK);
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var monday = now.Date.AddDays(-(((int)now.DayOfWeek + 6) % 7));
        var next = monday.AddDays(7);
        Assert.Equal(next, schedule.GetProperty("next_report_at").GetDateTime());
        Assert.Equal(IntegrationState.Connected, (await TileAsync("accounting", gym.GymId)).State);

        await RunReportsAsync();
        Assert.Empty(MessagesTo(gym.OwnerEmail)); // the week has not ended

        fx.Clock.Advance(next - now + ScheduledReports.Grace);
        fx.Services.GetRequiredService<ReportSignal>().Notify();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (MessagesTo(gym.OwnerEmail).Count == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the weekly report was not emailed");
            await Task.Delay(20);
        }
        var report = Assert.Single(MessagesTo(gym.OwnerEmail));
        var period = $"{monday:yyyy-MM-dd} to {next.AddDays(-1):yyyy-MM-dd}";
        Assert.Equal($"Gymwire weekly report: {period}", report.Subject);
        Assert.Contains("Payments received: 2 totalling 124.50 USD.", report.TextBody, StringComparison.Ordinal);
        var files = report.Attachments.OfType<MimePart>().ToDictionary(a => a.FileName ?? "", a => a);
        Assert.Equal([$"payments-{monday:yyyy-MM-dd}-to-{next.AddDays(-1):yyyy-MM-dd}.csv", $"refunds-{monday:yyyy-MM-dd}-to-{next.AddDays(-1):yyyy-MM-dd}.csv",
            $"members-{monday:yyyy-MM-dd}-to-{next.AddDays(-1):yyyy-MM-dd}.csv", $"quickbooks-{monday:yyyy-MM-dd}-to-{next.AddDays(-1):yyyy-MM-dd}.csv"], files.Keys);
        // A schedule saved without a date order has QuickBooks' US dates, as quickbooks.csv without date_order.
        using (var quickBooks = new MemoryStream())
        {
            await files.Last().Value.Content!.DecodeToAsync(quickBooks);
            Assert.StartsWith($"\uFEFFDate,Description,Amount\r\n{now.ToString("MM/dd/yyyy", System.Globalization.CultureInfo.InvariantCulture)},", System.Text.Encoding.UTF8.GetString(quickBooks.ToArray()), StringComparison.Ordinal);
        }
        using var content = new MemoryStream();
        await files.First().Value.Content!.DecodeToAsync(content);
        using var csv = CsvHelper.CsvReader.Create(new MemoryStream(content.ToArray()), new CsvHelper.CsvReaderOptions { Separator = ',' }, leaveOpen: false);
        var total = 0m;
        while (csv.Read())
        {
            total += decimal.Parse(csv.GetString("Amount"), System.Globalization.CultureInfo.InvariantCulture);
        }
        Assert.Equal(124.50m, total);

        // Another pass, and a restart, do not send the week again.
        await RunReportsAsync();
        await fx.RestartAsync();
        await RunReportsAsync();
        Assert.Single(MessagesTo(gym.OwnerEmail));
        var after = await (await gym.Owner().GetAsync("/api/gym/exports/schedule")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(next.AddDays(7), after.GetProperty("next_report_at").GetDateTime());
    }

    [Fact]
    public async Task The_schedule_is_the_owners_and_validated()
    {
        var gym = await fx.CreateGymAsync();
        Assert.Contains("'frequency' must be one of: daily, weekly, monthly",
            await (await gym.Owner().PutAsJsonAsync("/api/gym/exports/schedule", new { frequency = "hourly" })).AssertErrorAsync(HttpStatusCode.BadRequest), StringComparison.Ordinal);
        var key = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "k", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        await (await fx.Client(key.GetProperty("key").GetString()).PutAsJsonAsync("/api/gym/exports/schedule", new { frequency = "daily" })).AssertErrorAsync(HttpStatusCode.Forbidden);
        await (await gym.Owner().PutAsJsonAsync("/api/gym/exports/schedule", new { frequency = "monthly" })).AssertStatusAsync(HttpStatusCode.OK);
        await (await gym.Owner().DeleteAsync("/api/gym/exports/schedule")).AssertStatusAsync(HttpStatusCode.NoContent);
        Assert.False((await (await gym.Owner().GetAsync("/api/gym/exports/schedule")).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("enabled").GetBoolean());
        Assert.Equal(IntegrationState.NotConnected, (await TileAsync("accounting", gym.GymId)).State);
    }
}

public sealed class EmailNotConfiguredTests(SqliteGymwire fx) : IClassFixture<SqliteGymwire>
{
    [Fact]
    public async Task Without_smtp_reports_cannot_be_scheduled_and_notifications_report_not_sent()
    {
        var gym = await fx.CreateGymAsync();
        await (await gym.Owner().PutAsJsonAsync("/api/gym/exports/schedule", new { frequency = "weekly" })).AssertErrorAsync(HttpStatusCode.Conflict);
        await using var scope = fx.Services.CreateAsyncScope();
        var logStart = fx.Logs.Lines.Count;
        Assert.False(await scope.ServiceProvider.GetRequiredService<OwnerNotifications>().NotifyAsync(gym.GymId, "s", "b", CancellationToken.None));
        // No SMTP server is the default, not a failure: nothing recorded (an Email tile set up later starts clean), no warning.
        Assert.Equal(0, await fx.WithDbAsync(db => db.EmailDeliveries.CountAsync(d => d.GymId == gym.GymId)));
        Assert.DoesNotContain(fx.Logs.Lines.Skip(logStart), l => l.Contains("OwnerNotifications", StringComparison.Ordinal) && !l.StartsWith("Debug ", StringComparison.Ordinal));
        var tiles = scope.ServiceProvider.GetRequiredService<IntegrationTiles>();
        Assert.Equal(IntegrationState.NotConnected, (await tiles.StatusAsync(tiles.Find("email")!, gym.GymId, CancellationToken.None)).State);
    }
}

/// <summary>
/// A report that cannot be sent or prepared is given back and retried on the next pass. The worker's own loop is off
/// here (Reports:Enabled=false), so the test's passes are the only ones: the background pass, woken by the fake clock,
/// would otherwise race them.
/// </summary>
public abstract class ReportRetryTests(SmtpManualReportsFixture fx)
{
    public sealed class Sqlite(SqliteSmtpManualReports f) : ReportRetryTests(f), IClassFixture<SqliteSmtpManualReports>;
    public sealed class Postgres(PostgresSmtpManualReports f) : ReportRetryTests(f), IClassFixture<PostgresSmtpManualReports>;

    private Task RunReportsAsync(CancellationToken ct = default) =>
        fx.Services.GetServices<IHostedService>().OfType<ScheduledReports>().Single().RunOnceAsync(ct);

    private async Task<IntegrationStatus> TileAsync(string key, Guid gymId)
    {
        await using var scope = fx.Services.CreateAsyncScope();
        var tiles = scope.ServiceProvider.GetRequiredService<IntegrationTiles>();
        return await tiles.StatusAsync(tiles.Find(key)!, gymId, CancellationToken.None);
    }

    private List<MimeMessage> MessagesTo(string email) =>
        fx.Smtp.Messages.Where(m => m.To.Mailboxes.Any(a => a.Address == email)).ToList();

    private Task<DateTime> ReportedThroughAsync(Guid gymId) =>
        fx.WithDbAsync(db => db.ReportSchedules.Where(s => s.GymId == gymId).Select(s => s.ReportedThrough).SingleAsync());

    /// <summary>
    /// Gives these gyms a daily report and makes its first day end. Only they have a schedule in this class's
    /// database, so a refusal meant for their reports cannot fall on another test's.
    /// </summary>
    private async Task<DateTime> DailyReportsDueAsync(params TestGym[] gyms)
    {
        var ids = gyms.Select(g => g.GymId).ToList();
        await fx.WithDbAsync(db => db.ReportSchedules.Where(s => !ids.Contains(s.GymId)).ExecuteDeleteAsync());
        foreach (var gym in gyms)
        {
            await (await gym.Owner().PutAsJsonAsync("/api/gym/exports/schedule", new { frequency = "daily" })).AssertStatusAsync(HttpStatusCode.OK);
        }
        var start = await ReportedThroughAsync(gyms[0].GymId);
        fx.Clock.Advance(TimeSpan.FromDays(1));
        return start;
    }

    [Fact]
    public async Task A_report_that_cannot_be_sent_is_retried_on_the_next_pass()
    {
        var gym = await fx.CreateGymAsync();
        await DailyReportsDueAsync(gym);
        Interlocked.Exchange(ref fx.Smtp.RejectNext, 1);
        await RunReportsAsync();
        Assert.Empty(MessagesTo(gym.OwnerEmail));
        var tile = await TileAsync("accounting", gym.GymId);
        Assert.Equal(IntegrationState.Error, tile.State);
        Assert.Contains("554", tile.Reason, StringComparison.Ordinal);
        await RunReportsAsync();
        Assert.StartsWith("Gymwire daily report:", Assert.Single(MessagesTo(gym.OwnerEmail)).Subject, StringComparison.Ordinal);
        Assert.Equal(IntegrationState.Connected, (await TileAsync("accounting", gym.GymId)).State);
    }

    [Fact]
    public async Task A_report_the_server_wants_a_login_for_is_retried_and_the_other_gyms_still_get_theirs()
    {
        var (first, second) = (await fx.CreateGymAsync(), await fx.CreateGymAsync());
        await DailyReportsDueAsync(first, second);
        Interlocked.Exchange(ref fx.Smtp.RequireLoginNext, 1);
        await RunReportsAsync();
        // Whichever gym came first met the 530; the other was sent.
        var refused = MessagesTo(first.OwnerEmail).Count == 0 ? first : second;
        var sent = refused == first ? second : first;
        Assert.Empty(MessagesTo(refused.OwnerEmail));
        Assert.Single(MessagesTo(sent.OwnerEmail));
        var tile = await TileAsync("accounting", refused.GymId);
        Assert.Equal(IntegrationState.Error, tile.State);
        Assert.Contains("530", tile.Reason, StringComparison.Ordinal);
        Assert.Equal("failed", (await fx.WithDbAsync(db => db.EmailDeliveries.SingleAsync(d => d.GymId == refused.GymId))).Status);

        await RunReportsAsync();
        Assert.StartsWith("Gymwire daily report:", Assert.Single(MessagesTo(refused.OwnerEmail)).Subject, StringComparison.Ordinal);
        Assert.Single(MessagesTo(sent.OwnerEmail));
        Assert.Equal(IntegrationState.Connected, (await TileAsync("accounting", refused.GymId)).State);
    }

    [Fact]
    public async Task A_report_that_fails_to_be_prepared_is_given_back_and_the_other_gyms_still_get_theirs()
    {
        var (failing, other) = (await fx.CreateGymAsync(), await fx.CreateGymAsync());
        var start = await DailyReportsDueAsync(failing, other);
        fx.Failures.FailFor = failing.GymId;
        try
        {
            await RunReportsAsync();
        }
        finally
        {
            fx.Failures.FailFor = null;
        }
        Assert.Empty(MessagesTo(failing.OwnerEmail));
        Assert.Single(MessagesTo(other.OwnerEmail));
        Assert.Equal(start, await ReportedThroughAsync(failing.GymId));
        Assert.Equal(IntegrationState.Error, (await TileAsync("accounting", failing.GymId)).State);

        await RunReportsAsync();
        Assert.StartsWith("Gymwire daily report:", Assert.Single(MessagesTo(failing.OwnerEmail)).Subject, StringComparison.Ordinal);
        Assert.Single(MessagesTo(other.OwnerEmail));
    }

    [Fact]
    public async Task A_report_cut_off_by_shutdown_is_given_back()
    {
        var gym = await fx.CreateGymAsync();
        var start = await DailyReportsDueAsync(gym);
        var (arrived, release) = fx.Smtp.HoldNextMail();
        using var stopping = new CancellationTokenSource();
        var pass = RunReportsAsync(stopping.Token);
        await arrived.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotEqual(start, await ReportedThroughAsync(gym.GymId)); // claimed while it is being sent
        await stopping.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pass);
        release.SetResult();
        Assert.Equal(start, await ReportedThroughAsync(gym.GymId));
        Assert.Empty(MessagesTo(gym.OwnerEmail));

        await RunReportsAsync();
        Assert.StartsWith("Gymwire daily report:", Assert.Single(MessagesTo(gym.OwnerEmail)).Subject, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_report_the_server_accepted_is_not_sent_again_when_its_record_cannot_be_written()
    {
        var gym = await fx.CreateGymAsync();
        var start = await DailyReportsDueAsync(gym);
        fx.Failures.FailEmailRecordFor = gym.GymId;
        try
        {
            await RunReportsAsync();
        }
        finally
        {
            fx.Failures.FailEmailRecordFor = null;
        }
        Assert.Single(MessagesTo(gym.OwnerEmail));
        Assert.NotEqual(start, await ReportedThroughAsync(gym.GymId));
        Assert.NotNull(await fx.WithDbAsync(db => db.ReportSchedules.Where(s => s.GymId == gym.GymId).Select(s => s.LastSentAt).SingleAsync()));

        await RunReportsAsync();
        Assert.Single(MessagesTo(gym.OwnerEmail));
    }

    [Fact]
    public async Task A_report_whose_sent_record_fails_once_is_recorded_on_a_retry_and_not_sent_again_when_the_claim_would_lapse()
    {
        var gym = await fx.CreateGymAsync();
        var start = await DailyReportsDueAsync(gym);
        fx.Failures.FailSentReportRecordFor = gym.GymId;
        Interlocked.Exchange(ref fx.Failures.FailSentReportRecords, 1);
        try
        {
            await RunReportsAsync();
        }
        finally
        {
            fx.Failures.FailSentReportRecordFor = null;
        }
        Assert.Single(MessagesTo(gym.OwnerEmail));
        Assert.True(Volatile.Read(ref fx.Failures.FailSentReportRecords) <= 0, "the update recording the send was failed once");

        fx.Clock.Advance(ScheduledReports.ClaimLease + TimeSpan.FromMinutes(1));
        await RunReportsAsync();
        Assert.Single(MessagesTo(gym.OwnerEmail));
        var schedule = await fx.WithDbAsync(db => db.ReportSchedules.SingleAsync(s => s.GymId == gym.GymId));
        Assert.NotEqual(start, schedule.ReportedThrough);
        Assert.Null(schedule.ClaimedFrom);
        Assert.NotNull(schedule.LastSentAt);
    }

    [Fact]
    public async Task A_refused_recipient_does_not_keep_the_report_from_the_others_and_the_period_is_not_sent_again()
    {
        var gym = await fx.CreateGymAsync();
        await DailyReportsDueAsync(gym);
        var (good, bad) = ($"good-{Guid.NewGuid():N}@example.com", $"bad-{Guid.NewGuid():N}@example.com");
        await fx.WithDbAsync(db => db.ReportSchedules.Where(s => s.GymId == gym.GymId).ExecuteUpdateAsync(s => s.SetProperty(x => x.Recipients, $"{good}, {bad}")));
        fx.Smtp.RefusedRecipients[bad] = true;
        try
        {
            await RunReportsAsync();
            await RunReportsAsync();
        }
        finally
        {
            fx.Smtp.RefusedRecipients.TryRemove(bad, out _);
        }
        Assert.StartsWith("Gymwire daily report:", Assert.Single(MessagesTo(good)).Subject, StringComparison.Ordinal);
        var delivery = await fx.WithDbAsync(db => db.EmailDeliveries.SingleAsync(d => d.GymId == gym.GymId));
        Assert.Equal("failed", delivery.Status);
        Assert.Contains(bad, delivery.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(good, delivery.Error, StringComparison.Ordinal);
        Assert.Contains(bad, (await TileAsync("email", gym.GymId)).Reason, StringComparison.Ordinal);
        Assert.NotNull(await fx.WithDbAsync(db => db.ReportSchedules.Where(s => s.GymId == gym.GymId).Select(s => s.LastSentAt).SingleAsync()));
    }

    [Fact]
    public async Task A_payment_stamped_before_midnight_and_committed_after_it_is_in_the_report()
    {
        var gym = await fx.CreateGymAsync();
        await fx.WithDbAsync(db => db.ReportSchedules.Where(s => s.GymId != gym.GymId).ExecuteDeleteAsync());
        await (await gym.Owner().PutAsJsonAsync("/api/gym/exports/schedule", new { frequency = "daily" })).AssertStatusAsync(HttpStatusCode.OK);
        var end = (await ReportedThroughAsync(gym.GymId)).AddDays(1); // the gym's zone is UTC
        fx.Clock.Advance(end.AddSeconds(1) - fx.Clock.GetUtcNow().UtcDateTime);
        await RunReportsAsync();
        Assert.Empty(MessagesTo(gym.OwnerEmail));

        // Recorded half a second before midnight by a request whose commit came after that pass (reports pick by recorded time).
        await fx.WithDbAsync(db =>
        {
            db.Payments.Add(new Gymwire.Features.Payments.Payment
            {
                Id = Guid.NewGuid(), GymId = gym.GymId, UserId = "user_late", AmountCents = 4200, Currency = "usd",
                Status = Gymwire.Features.Payments.PaymentStatuses.Paid, CreatedAt = end.AddMilliseconds(-500), RecordedAt = end.AddMilliseconds(-500),
            });
            return db.SaveChangesAsync();
        });
        fx.Clock.Advance(ScheduledReports.Grace);
        await RunReportsAsync();
        Assert.Contains("Payments received: 1 totalling 42.00 USD.", Assert.Single(MessagesTo(gym.OwnerEmail)).TextBody, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_report_the_server_accepted_is_not_sent_again_when_shutdown_comes_after()
    {
        var gym = await fx.CreateGymAsync();
        var start = await DailyReportsDueAsync(gym);
        var (arrived, release) = fx.Smtp.HoldNextQuit();
        using var stopping = new CancellationTokenSource();
        var pass = RunReportsAsync(stopping.Token);
        await arrived.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Single(MessagesTo(gym.OwnerEmail)); // accepted; the QUIT's answer is held
        await stopping.CancelAsync();
        release.SetResult();
        await pass;
        Assert.NotEqual(start, await ReportedThroughAsync(gym.GymId));
        Assert.Equal("sent", (await fx.WithDbAsync(db => db.EmailDeliveries.SingleAsync(d => d.GymId == gym.GymId))).Status);
        Assert.NotNull(await fx.WithDbAsync(db => db.ReportSchedules.Where(s => s.GymId == gym.GymId).Select(s => s.LastSentAt).SingleAsync()));

        await RunReportsAsync();
        Assert.Single(MessagesTo(gym.OwnerEmail));
    }
}

/// <summary>Email with the report worker's loop off (the tests run its passes), and a way to fail one gym's reads of payments or its email records.</summary>
public abstract class SmtpManualReportsFixture(Store store) : SmtpFixture(store)
{
    public DbFailures Failures { get; } = new();

    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [.. base.Settings(), new("Reports:Enabled", "false")];

    protected override void ConfigureServices(IServiceCollection services) => services.AddSingleton<IInterceptor>(Failures);
}

public sealed class SqliteSmtpManualReports() : SmtpManualReportsFixture(Store.Sqlite);

public sealed class PostgresSmtpManualReports() : SmtpManualReportsFixture(Store.Postgres);

/// <summary>While <see cref="FailFor"/> names a gym, every query of the payments table for that gym fails, as a database error would.</summary>
public sealed class DbFailures : DbCommandInterceptor
{
    /// <summary>Fails this gym's reads of payments (preparing its report).</summary>
    public Guid? FailFor { get; set; }

    /// <summary>Fails the record of this gym's sent emails (its insert into email_deliveries).</summary>
    public Guid? FailEmailRecordFor { get; set; }

    /// <summary>Fails the next <see cref="FailSentReportRecords"/> updates that record this gym's report as sent.</summary>
    public Guid? FailSentReportRecordFor { get; set; }

    public int FailSentReportRecords;

    public override InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result)
    {
        Check(command);
        return result;
    }

    public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
    {
        Check(command);
        return ValueTask.FromResult(result);
    }

    public override InterceptionResult<int> NonQueryExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<int> result)
    {
        Check(command);
        return result;
    }

    public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        Check(command);
        return ValueTask.FromResult(result);
    }

    private void Check(DbCommand command)
    {
        if ((FailFor is { } gym && command.CommandText.Contains("payments", StringComparison.OrdinalIgnoreCase) && Names(command, gym))
            || (FailEmailRecordFor is { } sender && command.CommandText.Contains("INSERT INTO", StringComparison.OrdinalIgnoreCase)
                && command.CommandText.Contains("email_deliveries", StringComparison.OrdinalIgnoreCase) && Names(command, sender))
            || (FailSentReportRecordFor is { } reported && command.CommandText.Contains("UPDATE", StringComparison.OrdinalIgnoreCase)
                && command.CommandText.Contains("report_schedules", StringComparison.OrdinalIgnoreCase)
                && command.CommandText.Contains("last_sent_at", StringComparison.OrdinalIgnoreCase) && Names(command, reported)
                && Interlocked.Decrement(ref FailSentReportRecords) >= 0))
        {
            throw new TestDbException();
        }
    }

    private static bool Names(DbCommand command, Guid gym) =>
        command.Parameters.Cast<DbParameter>().Any(p => string.Equals(p.Value?.ToString(), gym.ToString(), StringComparison.OrdinalIgnoreCase));

    private sealed class TestDbException() : DbException("The test database failed the query.");
}
