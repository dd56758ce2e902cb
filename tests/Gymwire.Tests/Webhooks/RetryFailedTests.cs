using System.Net;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// Issue #30: <c>POST /api/gym/webhooks/{id}/retry-failed</c> ("Retry all failed since …", Svix's recover): the failed
/// deliveries since a time get a fresh round of attempts and reach an endpoint that is back; nothing else is touched.
/// </summary>
public abstract class RetryFailedTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteWebhooks f) : RetryFailedTests(f), IClassFixture<SqliteWebhooks>;
    public sealed class Postgres(PostgresWebhooks f) : RetryFailedTests(f), IClassFixture<PostgresWebhooks>;

    private static string Since(DateTimeOffset t) => t.UtcDateTime.ToString("O");

    /// <summary>A webhook whose first two deliveries end undeliverable (a test send fails once, for good) while the endpoint is down.</summary>
    private async Task<(TestGym Gym, CreatedHook Hook, List<Guid> Failed)> OutageAsync(TestReceiver receiver, string path)
    {
        var down = true;
        receiver.On(path, _ => down ? new Reply(503, "down") : new Reply(200, "back"));
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url(path), "member.joined");
        using var owner = gym.Owner();
        var failed = new List<Guid>();
        for (var i = 0; i < 2; i++)
        {
            var sent = await (await owner.PostJsonAsync($"/api/gym/webhooks/{hook.Id}/test", new { })).AssertStatusAsync(HttpStatusCode.OK);
            Assert.Equal(DeliveryStatus.Undeliverable, sent.GetProperty("status").GetString());
            failed.Add(sent.GetProperty("id").GetGuid());
        }
        down = false;
        return (gym, hook, failed);
    }

    [Fact]
    public async Task Failed_deliveries_since_a_time_are_sent_again_to_the_healed_endpoint()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var start = fx.Clock.GetUtcNow();
        var (gym, hook, failed) = await OutageAsync(receiver, "/heal");
        using var owner = gym.Owner();

        var body = await (await owner.PostJsonAsync($"/api/gym/webhooks/{hook.Id}/retry-failed", new { since = Since(start) })).AssertStatusAsync(HttpStatusCode.Accepted);
        Assert.Equal(2, body.GetProperty("retried").GetInt32());

        foreach (var id in failed)
        {
            await fx.WaitForDeliveryAsync(hook.Id, d => d.Id == id && d.Status == DeliveryStatus.Delivered, "the retried delivery");
            var attempts = await fx.AttemptsAsync(id);
            Assert.Equal(["test", "redeliver"], attempts.Select(a => a.Trigger));
            Assert.Equal(200, attempts[^1].StatusCode);
        }
        var requests = receiver.At("/heal");
        Assert.Equal(4, requests.Count);
        Assert.Equal(failed.Select(f => f.ToString()).Order(), requests.Skip(2).Select(r => r.Header("webhook-id")!).Order());

        // Nothing failed is left: a second call retries nothing.
        var again = await (await owner.PostJsonAsync($"/api/gym/webhooks/{hook.Id}/retry-failed", new { since = Since(start) })).AssertStatusAsync(HttpStatusCode.Accepted);
        Assert.Equal(0, again.GetProperty("retried").GetInt32());
    }

    [Fact]
    public async Task Retried_and_redelivered_deliveries_of_a_paused_webhook_are_due_at_its_pauses_end_and_sent_then()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var start = fx.Clock.GetUtcNow();
        var (gym, hook, failed) = await OutageAsync(receiver, "/paused");
        using var owner = gym.Owner();
        // The endpoint paused after failing, as the worker records it: no node attempts it before the pause ends.
        var pauseEnd = fx.Clock.GetUtcNow().UtcDateTime + TimeSpan.FromMinutes(10);
        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook.Id).ExecuteUpdateAsync(u => u
            .SetProperty(s => s.ConsecutiveFailures, 5)
            .SetProperty(s => s.PausedUntil, pauseEnd)
            .SetProperty(s => s.PauseLength, TimeSpan.FromMinutes(10))));

        var body = await (await owner.PostJsonAsync($"/api/gym/webhooks/{hook.Id}/retry-failed", new { since = Since(start) })).AssertStatusAsync(HttpStatusCode.Accepted);
        Assert.Equal(2, body.GetProperty("retried").GetInt32());
        var redelivered = await (await owner.PostJsonAsync($"/api/gym/webhooks/{hook.Id}/deliveries/{failed[0]}/redeliver", new { })).AssertStatusAsync(HttpStatusCode.Accepted);
        Assert.Equal(pauseEnd, redelivered.GetProperty("next_attempt_at").GetDateTime().ToUniversalTime());
        var rows = await fx.DeliveriesAsync(hook.Id);
        Assert.All(rows.Where(r => failed.Contains(r.Id)), r =>
        {
            Assert.Equal(DeliveryStatus.Pending, r.Status);
            Assert.Equal(pauseEnd, r.NextAttemptAt);
        });

        // The pause ends: one probe, which succeeds, and then the other.
        fx.AdvanceAndWake(TimeSpan.FromMinutes(10));
        foreach (var id in failed)
        {
            await fx.WaitForDeliveryAsync(hook.Id, d => d.Id == id && d.Status == DeliveryStatus.Delivered, "the retried delivery after the pause");
        }
        Assert.Equal(4, receiver.At("/paused").Count);
    }

    [Fact]
    public async Task Deliveries_before_since_and_delivered_ones_are_left_alone()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var (gym, hook, failed) = await OutageAsync(receiver, "/later");
        fx.Clock.Advance(TimeSpan.FromMinutes(10));
        var since = fx.Clock.GetUtcNow();
        using var owner = gym.Owner();
        var delivered = await (await owner.PostJsonAsync($"/api/gym/webhooks/{hook.Id}/test", new { })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(DeliveryStatus.Delivered, delivered.GetProperty("status").GetString());

        var body = await (await owner.PostJsonAsync($"/api/gym/webhooks/{hook.Id}/retry-failed", new { since = Since(since) })).AssertStatusAsync(HttpStatusCode.Accepted);
        Assert.Equal(0, body.GetProperty("retried").GetInt32());
        var rows = await fx.DeliveriesAsync(hook.Id);
        Assert.All(rows.Where(r => failed.Contains(r.Id)), r => Assert.Equal(DeliveryStatus.Undeliverable, r.Status));
        Assert.Equal(3, receiver.At("/later").Count);
    }

    [Fact]
    public async Task Bad_input_is_400_with_the_error_shape_and_changes_nothing()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var (gym, hook, _) = await OutageAsync(receiver, "/bad");
        using var owner = gym.Owner();
        var before = await fx.DeliveriesAsync(hook.Id);
        var url = $"/api/gym/webhooks/{hook.Id}/retry-failed";

        Assert.Contains("'since' is required", await (await owner.PostJsonAsync(url, new { })).AssertErrorAsync(HttpStatusCode.BadRequest), StringComparison.Ordinal);
        Assert.Contains("future", await (await owner.PostJsonAsync(url, new { since = Since(fx.Clock.GetUtcNow().AddHours(1)) })).AssertErrorAsync(HttpStatusCode.BadRequest), StringComparison.Ordinal);
        await (await owner.PostRawAsync(url, """{"since":"yesterday"}""")).AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await owner.PostRawAsync(url, """{"since":12}""")).AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await owner.PostRawAsync(url, "not json")).AssertErrorAsync(HttpStatusCode.BadRequest);

        var after = await fx.DeliveriesAsync(hook.Id);
        Assert.Equal(before.Select(d => (d.Id, d.Status, d.AttemptCount)), after.Select(d => (d.Id, d.Status, d.AttemptCount)));
    }

    [Fact]
    public async Task Another_gym_and_another_key_get_404_and_a_disabled_webhook_409()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var start = fx.Clock.GetUtcNow();
        var (gym, hook, _) = await OutageAsync(receiver, "/isolated");
        var payload = new { since = Since(start) };
        var url = $"/api/gym/webhooks/{hook.Id}/retry-failed";

        var other = await fx.CreateGymAsync();
        using (var stranger = other.Owner())
        {
            Assert.Equal("Webhook not found", await (await stranger.PostJsonAsync(url, payload)).AssertErrorAsync(HttpStatusCode.NotFound));
        }
        // A write key sees only the subscriptions it created (WebhookAccess): the owner's is not found for it.
        using var owner = gym.Owner();
        var key = (await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Zapier", scopes = new[] { "read", "write" } }))
            .AssertStatusAsync(HttpStatusCode.Created)).GetProperty("key").GetString()!;
        using (var zapier = fx.Client(key))
        {
            Assert.Equal("Webhook not found", await (await zapier.PostJsonAsync(url, payload)).AssertErrorAsync(HttpStatusCode.NotFound));
            // Its own webhook it may recover.
            var own = (await (await zapier.PostJsonAsync("/api/gym/webhooks", new { url = receiver.Url("/own"), events = new[] { "member.joined" } }))
                .AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid();
            var result = await (await zapier.PostJsonAsync($"/api/gym/webhooks/{own}/retry-failed", payload)).AssertStatusAsync(HttpStatusCode.Accepted);
            Assert.Equal(0, result.GetProperty("retried").GetInt32());
        }
        // A read-only key may not.
        var reader = (await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Reader", scopes = new[] { "read" } }))
            .AssertStatusAsync(HttpStatusCode.Created)).GetProperty("key").GetString()!;
        using (var read = fx.Client(reader))
        {
            await (await read.PostJsonAsync(url, payload)).AssertErrorAsync(HttpStatusCode.Forbidden);
        }
        Assert.All(await fx.DeliveriesAsync(hook.Id), d => Assert.Equal(DeliveryStatus.Undeliverable, d.Status));

        await (await owner.DeleteAsync($"/api/gym/webhooks/{hook.Id}")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Contains("inactive", await (await owner.PostJsonAsync(url, payload)).AssertErrorAsync(HttpStatusCode.Conflict), StringComparison.Ordinal);
        Assert.All(await fx.DeliveriesAsync(hook.Id), d => Assert.Equal(DeliveryStatus.Undeliverable, d.Status));
    }

    [Fact]
    public async Task A_description_is_stored_trimmed_changed_and_cleared_and_a_bad_one_is_400()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var created = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url = "https://hooks.example/a", description = "  Zapier: new members  " }))
            .AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("Zapier: new members", created.GetProperty("description").GetString());
        var id = created.GetProperty("id").GetGuid();
        var changed = await (await owner.PatchJsonAsync($"/api/gym/webhooks/{id}", new { description = "Make" })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("Make", changed.GetProperty("description").GetString());
        var kept = await (await owner.PatchJsonAsync($"/api/gym/webhooks/{id}", new { url = "https://hooks.example/b" })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("Make", kept.GetProperty("description").GetString());
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{id}", new { description = new string('x', 201) })).AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{id}", new { description = "two\nlines" })).AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await owner.PostJsonAsync("/api/gym/webhooks", new { url = "https://hooks.example/c", description = new string('x', 201) })).AssertErrorAsync(HttpStatusCode.BadRequest);
        var cleared = await (await owner.PatchJsonAsync($"/api/gym/webhooks/{id}", new { description = "" })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, cleared.GetProperty("description").ValueKind);
        Assert.Single(await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().Where(s => s.GymId == gym.GymId).ToListAsync()));
    }
}
