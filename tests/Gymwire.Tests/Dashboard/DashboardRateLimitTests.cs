using System.Globalization;
using System.Net;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Dashboard;

/// <summary>
/// Issue #25: the dashboard's destructive actions (deleting a webhook, rotating its secret, disconnecting Stripe,
/// stopping the scheduled report) spend the same per-owner budget as the API's (5 an hour), while revoking a key and
/// disabling a webhook are never limited; its changes (creates, edits, enabling, test sends, redeliveries) spend the
/// API's mutation budget (30 a minute).
/// </summary>
public abstract class DashboardRateLimitTests(WebhookFixture fx)
{
    public sealed class Sqlite(SqliteWebhooks f) : DashboardRateLimitTests(f), IClassFixture<SqliteWebhooks>;
    public sealed class Postgres(PostgresWebhooks f) : DashboardRateLimitTests(f), IClassFixture<PostgresWebhooks>;

    [Fact]
    public async Task Dashboard_rotations_and_deletes_share_the_APIs_destructive_limit_and_revocation_is_never_limited()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var hook = await gym.CreateWebhookAsync("https://hooks.example.com/a", "lead.created");
        var spare = await gym.CreateWebhookAsync("https://hooks.example.com/b", "lead.created");
        var key = (await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Leaked", scopes = new[] { "read" } })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var token = DashboardClient.Token(await browser.GetPageAsync($"/settings/webhooks/{hook.Id}/rotate-secret"));

        // Posts for webhooks that are not there take nothing from the budget.
        for (var i = 0; i < 6; i++)
        {
            Assert.Equal(HttpStatusCode.NotFound, (await browser.PostFormAsync($"/settings/webhooks/{Guid.NewGuid()}/rotate-secret", ("__RequestVerificationToken", token))).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await browser.PostFormAsync($"/settings/webhooks/{Guid.NewGuid()}/delete", ("__RequestVerificationToken", token))).StatusCode);
        }
        // Three rotations by API and two in the dashboard spend the owner's five.
        for (var i = 0; i < 3; i++)
        {
            await (await owner.PostAsync($"/api/gym/webhooks/{hook.Id}/rotate-secret", null)).AssertStatusAsync(HttpStatusCode.OK);
        }
        for (var i = 0; i < 2; i++)
        {
            var rotated = await browser.FollowAsync(await browser.SubmitAsync($"/settings/webhooks/{hook.Id}/rotate-secret"));
            Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
            Assert.Contains("New signing secret", await rotated.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        var secretBefore = await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook.Id).Select(s => s.SecretProtected).SingleAsync());

        var limited = await browser.SubmitAsync($"/settings/webhooks/{hook.Id}/rotate-secret");
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.InRange(int.Parse(limited.Headers.GetValues("Retry-After").Single(), CultureInfo.InvariantCulture), 3599, 3600);
        var html = await limited.Content.ReadAsStringAsync();
        Assert.Contains("limit of 5 deletions and secret rotations per 1 hour", html, StringComparison.Ordinal);
        Assert.DoesNotContain("New signing secret", html, StringComparison.Ordinal);
        Assert.Equal(secretBefore, await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook.Id).Select(s => s.SecretProtected).SingleAsync()));

        var refusedDelete = await browser.SubmitAsync($"/settings/webhooks/{spare.Id}/delete");
        Assert.Equal(HttpStatusCode.TooManyRequests, refusedDelete.StatusCode);
        Assert.True(await fx.WithDbAsync(db => db.WebhookSubscriptions.AnyAsync(s => s.Id == spare.Id)));
        await (await owner.PostAsync($"/api/gym/webhooks/{hook.Id}/rotate-secret", null)).AssertErrorAsync(HttpStatusCode.TooManyRequests);

        // Disabling a webhook and revoking a key still work, in the dashboard and by API.
        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync($"/settings/webhooks/{spare.Id}?handler=Disable")).StatusCode);
        Assert.False(await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == spare.Id).Select(s => s.IsActive).SingleAsync()));
        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync($"/settings/api-keys/{key}/revoke")).StatusCode);
        Assert.NotNull(await fx.WithDbAsync(db => db.ApiKeys.Where(k => k.Id == key).Select(k => k.RevokedAt).SingleAsync()));

        // An hour later the budget is back.
        fx.Clock.Advance(TimeSpan.FromHours(1));
        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync($"/settings/webhooks/{spare.Id}/delete")).StatusCode);
    }

    [Fact]
    public async Task Dashboard_changes_share_the_APIs_mutation_limit_both_ways()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var hook = await gym.CreateWebhookAsync("https://hooks.example.com/m", "lead.created");
        // A delivered one, to redeliver from its own page.
        var delivered = Guid.CreateVersion7();
        await fx.WithDbAsync(async db =>
        {
            var now = fx.Clock.GetUtcNow().UtcDateTime;
            db.WebhookDeliveries.Add(new Gymwire.Features.Webhooks.WebhookDelivery
            {
                Id = delivered, GymId = gym.GymId, SubscriptionId = hook.Id, Event = "lead.created", Status = Gymwire.Features.Webhooks.DeliveryStatus.Delivered,
                Payload = Gymwire.Features.Webhooks.WebhookPayloads.Build(Guid.NewGuid(), "lead.created", gym.GymId, """{"lead_id":"l1"}""", now),
                CreatedAt = now, AttemptCount = 1, LastAttemptAt = now, LastStatusCode = 200,
            });
            return await db.SaveChangesAsync();
        });
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        // A fresh window: the set-up's calls are a minute old.
        fx.Clock.Advance(TimeSpan.FromMinutes(1));

        // The API spends the owner's budget; then every dashboard change is refused and changes nothing.
        var admitted = 0;
        while ((await owner.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { is_active = true })).StatusCode == HttpStatusCode.OK)
        {
            Assert.InRange(++admitted, 1, 30);
        }
        Assert.Equal(30, admitted);
        var keysBefore = await fx.WithDbAsync(db => db.ApiKeys.CountAsync(k => k.GymId == gym.GymId));
        var hooksBefore = await fx.WithDbAsync(db => db.WebhookSubscriptions.CountAsync(s => s.GymId == gym.GymId));
        foreach (var refused in new[]
                 {
                     await browser.SubmitAsync($"/settings/webhooks/{hook.Id}?handler=Enable"),
                     await browser.SubmitAsync($"/settings/webhooks/{hook.Id}?handler=Test"),
                     await browser.SubmitAsync($"/settings/webhooks/{hook.Id}/deliveries/{delivered}?handler=Redeliver"),
                     await browser.SubmitAsync($"/settings/webhooks/{hook.Id}/edit", ("Input.Url", "https://hooks.example.com/moved")),
                     await browser.SubmitAsync("/settings/webhooks/new", ("Input.Url", "https://hooks.example.com/new")),
                     await browser.SubmitAsync("/settings/api-keys/new", ("Input.Label", "Zapier"), ("Input.Permissions", "read")),
                     await browser.SubmitAsync("/settings/integrations/payments?handler=Save", ("Secret", "whsec_" + new string('a', 32))),
                 })
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.InRange(int.Parse(refused.Headers.GetValues("Retry-After").Single(), CultureInfo.InvariantCulture), 1, 60);
            Assert.Contains("limit of 30 changes per 1 minute", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        Assert.Equal(keysBefore, await fx.WithDbAsync(db => db.ApiKeys.CountAsync(k => k.GymId == gym.GymId)));
        Assert.Equal(hooksBefore, await fx.WithDbAsync(db => db.WebhookSubscriptions.CountAsync(s => s.GymId == gym.GymId)));
        Assert.Equal("https://hooks.example.com/m", await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook.Id).Select(s => s.Url).SingleAsync()));
        // No test send, and the delivered one not queued again.
        Assert.Equal([(delivered, Gymwire.Features.Webhooks.DeliveryStatus.Delivered)], await fx.WithDbAsync(db => db.WebhookDeliveries
            .Where(d => d.SubscriptionId == hook.Id).Select(d => new ValueTuple<Guid, string>(d.Id, d.Status)).ToListAsync()));
        Assert.False(await fx.WithDbAsync(db => db.StripeAccounts.AnyAsync(a => a.GymId == gym.GymId)));

        // A minute later the dashboard spends the budget, and then the API is refused.
        fx.Clock.Advance(TimeSpan.FromMinutes(1));
        for (var i = 0; i < 30; i++)
        {
            Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync($"/settings/webhooks/{hook.Id}?handler=Enable")).StatusCode);
        }
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { is_active = true })).AssertErrorAsync(HttpStatusCode.TooManyRequests);
    }

    [Fact]
    public async Task Disconnecting_Stripe_and_stopping_the_scheduled_report_in_the_dashboard_spend_the_destructive_limit()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        Task ConnectAsync() => fx.WithDbAsync(db =>
        {
            db.StripeAccounts.Add(new Gymwire.Features.Stripe.StripeAccount { GymId = gym.GymId, ProtectedEndpointSecret = "not read here", SecretHint = "1234" });
            return db.SaveChangesAsync();
        });
        Task ScheduleAsync() => fx.WithDbAsync(db =>
        {
            db.ReportSchedules.Add(new Gymwire.Features.Email.ReportSchedule { GymId = gym.GymId, Frequency = "monthly", ReportedThrough = new DateTime(2026, 4, 1, 0, 0, 0, DateTimeKind.Utc) });
            return db.SaveChangesAsync();
        });

        // With nothing connected or scheduled, nothing changes and nothing is spent.
        for (var i = 0; i < 6; i++)
        {
            Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync("/settings/integrations/payments?handler=Remove")).StatusCode);
            Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync("/settings/integrations/accounting", ("Frequency", "off"))).StatusCode);
        }
        // Three disconnections and two stops spend the owner's five.
        for (var i = 0; i < 3; i++)
        {
            await ConnectAsync();
            Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync("/settings/integrations/payments?handler=Remove")).StatusCode);
        }
        for (var i = 0; i < 2; i++)
        {
            await ScheduleAsync();
            Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync("/settings/integrations/accounting", ("Frequency", "off"))).StatusCode);
        }
        await ConnectAsync();
        await ScheduleAsync();
        var refusedDisconnect = await browser.SubmitAsync("/settings/integrations/payments?handler=Remove");
        Assert.Equal(HttpStatusCode.TooManyRequests, refusedDisconnect.StatusCode);
        Assert.InRange(int.Parse(refusedDisconnect.Headers.GetValues("Retry-After").Single(), CultureInfo.InvariantCulture), 3599, 3600);
        Assert.Contains("limit of 5 deletions and secret rotations per 1 hour", await refusedDisconnect.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.True(await fx.WithDbAsync(db => db.StripeAccounts.AnyAsync(a => a.GymId == gym.GymId)));
        var refusedStop = await browser.SubmitAsync("/settings/integrations/accounting", ("Frequency", "off"));
        Assert.Equal(HttpStatusCode.TooManyRequests, refusedStop.StatusCode);
        Assert.True(await fx.WithDbAsync(db => db.ReportSchedules.AnyAsync(s => s.GymId == gym.GymId)));
        // The same budget as the API's.
        await (await owner.DeleteAsync("/api/gym/integrations/stripe")).AssertErrorAsync(HttpStatusCode.TooManyRequests);
    }
}
