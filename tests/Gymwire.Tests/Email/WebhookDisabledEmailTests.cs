using System.Net;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Email;

/// <summary>When the delivery worker deactivates a subscription (410 Gone here), the owner is told by email.</summary>
public abstract class WebhookDisabledEmailTests(SmtpFixture fx)
{
    public sealed class Sqlite(SqliteSmtpWebhooks f) : WebhookDisabledEmailTests(f), IClassFixture<SqliteSmtpWebhooks>;
    public sealed class Postgres(PostgresSmtpWebhooks f) : WebhookDisabledEmailTests(f), IClassFixture<PostgresSmtpWebhooks>;

    [Fact]
    public async Task A_webhook_deactivated_by_the_worker_emails_the_owner()
    {
        var gym = await fx.CreateGymAsync();
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/gone", new Reply(410));
        var hook = await gym.CreateWebhookAsync(receiver.Url("/gone"));
        await (await gym.Owner().PostJsonAsync("/api/gym/members", new { name = "Trigger", user_id = "user_trigger" })).AssertStatusAsync(System.Net.HttpStatusCode.Created);

        await Eventually.TrueAsync(() => Task.FromResult(fx.Smtp.Messages.Any(m => m.To.Mailboxes.Any(a => a.Address == gym.OwnerEmail))),
            TimeSpan.FromSeconds(30), "the owner's email about the disabled webhook");
        var message = fx.Smtp.Messages.Single(m => m.To.Mailboxes.Any(a => a.Address == gym.OwnerEmail));
        Assert.Equal("Gymwire disabled a failing webhook", message.Subject);
        Assert.Contains(receiver.Url("/gone"), message.TextBody, StringComparison.Ordinal);
        Assert.Contains("410", message.TextBody, StringComparison.Ordinal);
        // True to what happens: events while disabled are not queued, one 410 is not "kept failing", and the path is the dashboard's.
        Assert.Contains("new events are not queued for it", message.TextBody, StringComparison.Ordinal);
        Assert.DoesNotContain("are kept", message.TextBody, StringComparison.Ordinal);
        Assert.DoesNotContain("kept failing", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("dashboard: Webhooks,", message.TextBody, StringComparison.Ordinal);
        _ = hook;
    }

    [Fact]
    public async Task A_hanging_mail_server_does_not_hold_up_recording_other_gyms_deliveries()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/gone-hang", new Reply(410));
        receiver.On("/ok-hang", new Reply(200));
        var release = fx.Smtp.HoldEveryMail();
        try
        {
            // As many deactivations as the recorder has writers (one on SQLite): a notice sent inline would hold each.
            var writers = fx.Services.GetRequiredService<IDeliveryQueue>().RecordWriters;
            for (var i = 0; i < writers; i++)
            {
                var gone = await fx.CreateGymAsync();
                await gone.CreateWebhookAsync(receiver.Url("/gone-hang"));
                await (await gone.Owner().PostJsonAsync("/api/gym/members", new { name = "Trigger", user_id = "user_trigger" })).AssertStatusAsync(HttpStatusCode.Created);
                await Eventually.TrueAsync(() => fx.WithDbAsync(db => db.WebhookSubscriptions.AnyAsync(s => s.GymId == gone.GymId && !s.IsActive)),
                    TimeSpan.FromSeconds(30), "the webhook deactivated");
            }
            await Eventually.TrueAsync(() => Task.FromResult(fx.Smtp.HeldMail > 0), TimeSpan.FromSeconds(30), "a notice's conversation held by the mail server");

            var other = await fx.CreateGymAsync();
            await other.CreateWebhookAsync(receiver.Url("/ok-hang"));
            await (await other.Owner().PostJsonAsync("/api/gym/members", new { name = "Other", user_id = "user_other" })).AssertStatusAsync(HttpStatusCode.Created);
            await Eventually.TrueAsync(() => fx.WithDbAsync(db => db.WebhookDeliveries.AnyAsync(d => d.GymId == other.GymId && d.Status == DeliveryStatus.Delivered)),
                TimeSpan.FromSeconds(30), "the other gym's delivery recorded while the mail server hangs");
        }
        finally
        {
            release.TrySetResult();
        }
    }
}

public abstract class SmtpWebhooksFixture(Store store) : SmtpFixture(store)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        .. base.Settings(),
        new("Webhooks:AllowHttp", "true"),
        new("Webhooks:AllowedNetworks:0", "127.0.0.0/8"),
        new("Webhooks:Timeout", "00:00:02"),
        // Long, so that MailKit's own per-read timeout cannot end a conversation a test holds (the deadline is on the fake clock).
        new("Email:Smtp:Timeout", "00:05:00"),
    ];
}

public sealed class SqliteSmtpWebhooks() : SmtpWebhooksFixture(Store.Sqlite);

public sealed class PostgresSmtpWebhooks() : SmtpWebhooksFixture(Store.Postgres);
