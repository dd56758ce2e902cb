using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;

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
        _ = hook;
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
    ];
}

public sealed class SqliteSmtpWebhooks() : SmtpWebhooksFixture(Store.Sqlite);

public sealed class PostgresSmtpWebhooks() : SmtpWebhooksFixture(Store.Postgres);
