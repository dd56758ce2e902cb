using System.Net;
using Gymwire.Features.ApiKeys;
using Gymwire.Features.Email;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using MimeKit;

namespace Gymwire.Tests.Email;

/// <summary>
/// When the API-key sweep switches off the webhooks of a key that expired or lacks <c>read</c>, the gym's owners are
/// told by email which webhooks and why, once; not when the owner revoked the key.
/// </summary>
public abstract class KeyWebhooksEmailTests(SmtpFixture fx)
{
    public sealed class Sqlite(SqliteSmtp f) : KeyWebhooksEmailTests(f), IClassFixture<SqliteSmtp>;
    public sealed class Postgres(PostgresSmtp f) : KeyWebhooksEmailTests(f), IClassFixture<PostgresSmtp>;

    /// <summary>How long a queued notice may take to reach the SMTP stand-in (sent in the background, on real time).</summary>
    internal static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    internal static bool To(MimeMessage message, string email) => message.To.Mailboxes.Any(a => a.Address == email);

    internal static async Task<(Guid Id, string Key, string Prefix)> KeyAsync(HttpClient owner, string name, DateTime? expiresAt, params string[] scopes)
    {
        var created = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name, scopes, expires_at = expiresAt })).AssertStatusAsync(HttpStatusCode.Created);
        return (created.GetProperty("id").GetGuid(), created.GetProperty("key").GetString()!, created.GetProperty("key_prefix").GetString()!);
    }

    internal static async Task<Guid> WebhookAsync(HttpClient client, string url, string? description = null) =>
        (await (await client.PostJsonAsync("/api/gym/webhooks", new { url, events = new[] { "member.joined" }, description })).AssertStatusAsync(HttpStatusCode.Created))
            .GetProperty("id").GetGuid();

    [Fact]
    public async Task The_sweep_emails_the_owner_once_about_an_expired_keys_webhooks_and_a_key_without_read_and_not_about_a_revocation()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var (_, trialKey, trialPrefix) = await KeyAsync(owner, "Trial", fx.Clock.GetUtcNow().UtcDateTime.AddSeconds(2), "read", "write");
        using var trial = fx.Client(trialKey);
        await WebhookAsync(trial, "https://hooks.trial.example/members", "Trial: new members");
        await WebhookAsync(trial, "https://hooks.trial.example/payments");
        await WebhookAsync(owner, "https://hooks.owner.example/own");
        var expiry = fx.Services.GetRequiredService<ApiKeyExpiry>();

        fx.Clock.Advance(TimeSpan.FromSeconds(2));
        var expired = fx.Smtp.NextAsync(m => To(m, gym.OwnerEmail));
        Assert.Equal(1, await expiry.SweepAsync(CancellationToken.None));
        var message = await expired.WaitAsync(Wait);
        Assert.Equal("Gymwire disabled the webhooks of an expired API key", message.Subject);
        Assert.Contains($"these 2 webhooks, which the API key 'Trial' ({trialPrefix}…) created", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("https://hooks.trial.example/members (Trial: new members)", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("https://hooks.trial.example/payments", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("Reason: the key expired.", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("dashboard: Webhooks, open the webhook, Enable", message.TextBody, StringComparison.Ordinal);
        Assert.DoesNotContain("hooks.owner.example", message.TextBody, StringComparison.Ordinal);
        // The next sweep finds them off already: nothing to tell.
        Assert.Equal(0, await expiry.SweepAsync(CancellationToken.None));

        // The owner revokes a key and so switches its webhook off: the owner knows, and gets no email.
        var (makeId, makeKey, _) = await KeyAsync(owner, "Make", null, "read", "write");
        await WebhookAsync(fx.Client(makeKey), "https://hooks.make.example/leads");
        await (await owner.DeleteAsync($"/api/gym/api-keys/{makeId}")).AssertStatusAsync(HttpStatusCode.OK);

        // A key without read, whose webhook was made while managing one needed only write (given to it here).
        var (legacyId, _, legacyPrefix) = await KeyAsync(owner, "Legacy Sync", null, "write");
        var legacyHook = await WebhookAsync(owner, "https://hooks.legacy.example/sync");
        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == legacyHook).ExecuteUpdateAsync(u => u.SetProperty(s => s.ApiKeyId, legacyId)));
        var unreadable = fx.Smtp.NextAsync(m => To(m, gym.OwnerEmail));
        Assert.Equal(1, await expiry.SweepAsync(CancellationToken.None));
        message = await unreadable.WaitAsync(Wait);
        Assert.Equal("Gymwire disabled the webhooks of an API key without read", message.Subject);
        Assert.Contains($"this webhook, which the API key 'Legacy Sync' ({legacyPrefix}…) created", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("https://hooks.legacy.example/sync", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("Reason: the key lacks the 'read' scope", message.TextBody, StringComparison.Ordinal);

        // Notices are sent one after another in the order queued: one for the second sweep or the revocation would have
        // come before this one.
        Assert.Equal(2, fx.Smtp.Messages.Count(m => To(m, gym.OwnerEmail)));
    }
}

/// <summary>
/// Two nodes' sweeps at once. Only on PostgreSQL: on SQLite the sweep's write transaction begins by taking the
/// database's one write lock, so two sweeps cannot both read a key's webhooks before either writes.
/// </summary>
public sealed class KeyWebhooksEmailRaceTests(PostgresSmtp fx) : IClassFixture<PostgresSmtp>
{
    [Fact]
    public async Task Two_sweeps_that_both_read_an_expired_keys_webhooks_before_either_writes_email_the_owner_once()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var (keyId, key, _) = await KeyWebhooksEmailTests.KeyAsync(owner, "Trial", fx.Clock.GetUtcNow().UtcDateTime.AddSeconds(2), "read", "write");
        await KeyWebhooksEmailTests.WebhookAsync(fx.Client(key), "https://hooks.trial.example/raced");
        var expiry = fx.Services.GetRequiredService<ApiKeyExpiry>();
        fx.Clock.Advance(TimeSpan.FromSeconds(2));

        fx.ReadBarrier.Arm("webhook_subscriptions", keyId, readers: 2);
        await Task.WhenAll(expiry.SweepAsync(CancellationToken.None), expiry.SweepAsync(CancellationToken.None));
        // A notice queued after theirs: once it is sent, theirs are.
        var marker = fx.Smtp.NextAsync(m => m.Subject == "Gymwire disabled a failing webhook" && KeyWebhooksEmailTests.To(m, gym.OwnerEmail));
        fx.Services.GetRequiredService<OwnerNoticeQueue>().WebhookDisabled(gym.GymId, Guid.NewGuid(), "https://marker.example/", "the marker");
        await marker.WaitAsync(KeyWebhooksEmailTests.Wait);

        var notices = fx.Smtp.Messages.Where(m => KeyWebhooksEmailTests.To(m, gym.OwnerEmail) && m.Subject == "Gymwire disabled the webhooks of an expired API key").ToList();
        Assert.Contains("https://hooks.trial.example/raced", Assert.Single(notices).TextBody, StringComparison.Ordinal);
        Assert.False(await fx.WithDbAsync(db => db.WebhookSubscriptions.AnyAsync(s => s.GymId == gym.GymId && s.IsActive)));
    }
}
