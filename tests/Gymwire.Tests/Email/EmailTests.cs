using System.Net;
using System.Net.Http.Json;
using Gymwire.Features.Dashboard.Integrations;
using Gymwire.Features.Email;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
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

    [Fact]
    public async Task A_refused_email_is_recorded_shown_on_the_tile_and_never_thrown_at_the_caller()
    {
        var gym = await fx.CreateGymAsync();
        Interlocked.Exchange(ref fx.Smtp.RejectNext, 1);
        Assert.False(await WithNotificationsAsync(n => n.NotifyAsync(gym.GymId, "Hello", "Body", CancellationToken.None)));
        Assert.Empty(MessagesTo(gym.OwnerEmail));
        var delivery = await fx.WithDbAsync(db => db.EmailDeliveries.SingleAsync(d => d.GymId == gym.GymId));
        Assert.Equal("failed", delivery.Status);
        Assert.Contains("554", delivery.Error, StringComparison.Ordinal);
        var tile = await TileAsync("email", gym.GymId);
        Assert.Equal(IntegrationState.Error, tile.State);
        Assert.Contains("554", tile.Reason, StringComparison.Ordinal);
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

        fx.Clock.Advance(next - now + TimeSpan.FromMinutes(1));
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
            $"members-{monday:yyyy-MM-dd}-to-{next.AddDays(-1):yyyy-MM-dd}.csv"], files.Keys);
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
        Assert.False(await scope.ServiceProvider.GetRequiredService<OwnerNotifications>().NotifyAsync(gym.GymId, "s", "b", CancellationToken.None));
        var tiles = scope.ServiceProvider.GetRequiredService<IntegrationTiles>();
        Assert.Equal(IntegrationState.NotConnected, (await tiles.StatusAsync(tiles.Find("email")!, gym.GymId, CancellationToken.None)).State);
    }
}

/// <summary>
/// A rejected report is retried on the next pass. The worker's own loop is off here (Reports:Enabled=false), so the
/// test's passes are the only ones: the background pass, woken by the fake clock, would otherwise race them.
/// </summary>
public abstract class ReportRetryTests(SmtpFixture fx)
{
    public sealed class Sqlite(SqliteSmtpManualReports f) : ReportRetryTests(f), IClassFixture<SqliteSmtpManualReports>;
    public sealed class Postgres(PostgresSmtpManualReports f) : ReportRetryTests(f), IClassFixture<PostgresSmtpManualReports>;

    private Task RunReportsAsync() =>
        fx.Services.GetServices<IHostedService>().OfType<ScheduledReports>().Single().RunOnceAsync(CancellationToken.None);

    private async Task<IntegrationStatus> TileAsync(string key, Guid gymId)
    {
        await using var scope = fx.Services.CreateAsyncScope();
        var tiles = scope.ServiceProvider.GetRequiredService<IntegrationTiles>();
        return await tiles.StatusAsync(tiles.Find(key)!, gymId, CancellationToken.None);
    }

    private List<MimeMessage> MessagesTo(string email) =>
        fx.Smtp.Messages.Where(m => m.To.Mailboxes.Any(a => a.Address == email)).ToList();

    [Fact]
    public async Task A_report_that_cannot_be_sent_is_retried_on_the_next_pass()
    {
        var gym = await fx.CreateGymAsync();
        await (await gym.Owner().PutAsJsonAsync("/api/gym/exports/schedule", new { frequency = "daily" })).AssertStatusAsync(HttpStatusCode.OK);
        fx.Clock.Advance(TimeSpan.FromDays(1));
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
}

public abstract class SmtpManualReportsFixture(Store store) : SmtpFixture(store)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [.. base.Settings(), new("Reports:Enabled", "false")];
}

public sealed class SqliteSmtpManualReports() : SmtpManualReportsFixture(Store.Sqlite);

public sealed class PostgresSmtpManualReports() : SmtpManualReportsFixture(Store.Postgres);
