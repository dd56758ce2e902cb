using System.Globalization;
using System.Net;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;

namespace Gymwire.Tests.Reliability;

/// <summary>
/// Issue #25: the destructive limit (5 an hour per user) counts only what it destroyed. Revoking a key and disabling a
/// webhook are never limited, and 404s, conflicts and refused calls give their permit back.
/// </summary>
public abstract class DestructiveLimitTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteWebhooks f) : DestructiveLimitTests(f), IClassFixture<SqliteWebhooks>;
    public sealed class Postgres(PostgresWebhooks f) : DestructiveLimitTests(f), IClassFixture<PostgresWebhooks>;

    private static async Task<(Guid Id, string Key)> KeyAsync(TestGym gym)
    {
        var created = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "Leaky", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        return (created.GetProperty("id").GetGuid(), created.GetProperty("key").GetString()!);
    }

    private static async Task<List<Guid>> MembersAsync(HttpClient owner, int count)
    {
        var ids = new List<Guid>();
        for (var i = 0; i < count; i++)
        {
            ids.Add((await (await owner.PostJsonAsync("/api/gym/members", new { name = $"M{i}" })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid());
        }
        return ids;
    }

    [Fact]
    public async Task Revoking_a_key_and_disabling_a_webhook_work_after_any_number_of_destructive_calls()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var hook = await gym.CreateWebhookAsync("https://example.com/hook", "payment.refunded");
        var keys = new List<(Guid Id, string Key)>();
        for (var i = 0; i < 8; i++)
        {
            keys.Add(await KeyAsync(gym));
        }
        // The hour's budget spent on rotations (which count), then refused.
        for (var i = 0; i < 5; i++)
        {
            await (await owner.PostAsync($"/api/gym/webhooks/{hook.Id}/rotate-secret", null)).AssertStatusAsync(HttpStatusCode.OK);
        }
        await (await owner.PostAsync($"/api/gym/webhooks/{hook.Id}/rotate-secret", null)).AssertErrorAsync(HttpStatusCode.TooManyRequests);

        // Every revocation still goes through, and the key stops working.
        foreach (var (id, key) in keys)
        {
            var revoked = await (await owner.DeleteAsync($"/api/gym/api-keys/{id}")).AssertStatusAsync(HttpStatusCode.OK);
            Assert.False(revoked.GetProperty("is_active").GetBoolean());
            await (await fx.Client(key).GetAsync("/api/me")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        }
        // So does disabling the webhook, twice over (idempotent).
        for (var i = 0; i < 3; i++)
        {
            var disabled = await (await owner.DeleteAsync($"/api/gym/webhooks/{hook.Id}")).AssertStatusAsync(HttpStatusCode.OK);
            Assert.False(disabled.GetProperty("is_active").GetBoolean());
        }
        await (await owner.PostAsync($"/api/gym/webhooks/{hook.Id}/rotate-secret", null)).AssertErrorAsync(HttpStatusCode.TooManyRequests);
    }

    [Fact]
    public async Task Calls_that_find_nothing_or_are_refused_consume_no_destructive_permit()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var ids = await MembersAsync(owner, 6);
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Payer", user_id = "u1" })).AssertStatusAsync(HttpStatusCode.Created);
        var failed = await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "u1", amount_cents = 100, status = "failed", failure_reason = "card_declined" })).AssertStatusAsync(HttpStatusCode.Created);
        for (var i = 0; i < 10; i++)
        {
            await (await owner.DeleteAsync($"/api/gym/members/{Guid.NewGuid()}")).AssertErrorAsync(HttpStatusCode.NotFound);
            await (await owner.PostAsync($"/api/gym/payments/{Guid.NewGuid()}/refund", null)).AssertErrorAsync(HttpStatusCode.NotFound);
            await (await owner.PostAsync($"/api/gym/webhooks/{Guid.NewGuid()}/rotate-secret", null)).AssertErrorAsync(HttpStatusCode.NotFound);
            // Refused: a failed payment cannot be refunded.
            await (await owner.PostAsync($"/api/gym/payments/{failed.GetProperty("id").GetGuid()}/refund", null)).AssertErrorAsync(HttpStatusCode.Conflict);
        }
        // The whole budget is still there: five deletes, then 429.
        for (var i = 0; i < 5; i++)
        {
            await (await owner.DeleteAsync($"/api/gym/members/{ids[i]}")).AssertStatusAsync(HttpStatusCode.OK);
        }
        var limited = await owner.DeleteAsync($"/api/gym/members/{ids[5]}");
        await limited.AssertErrorAsync(HttpStatusCode.TooManyRequests);
        Assert.InRange(int.Parse(limited.Headers.GetValues("Retry-After").Single(), CultureInfo.InvariantCulture), 3599, 3600);
        // A 404 over the limit is still a 429 (the limit answers first), and it uses nothing either.
        await (await owner.DeleteAsync($"/api/gym/members/{Guid.NewGuid()}")).AssertErrorAsync(HttpStatusCode.TooManyRequests);
    }

    [Fact]
    public async Task No_hour_admits_more_than_5_destructive_calls_across_a_window_edge()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var ids = await MembersAsync(owner, 12);
        var t0 = fx.Clock.GetUtcNow();
        await (await owner.DeleteAsync($"/api/gym/members/{ids[0]}")).AssertStatusAsync(HttpStatusCode.OK);
        fx.Clock.Advance(TimeSpan.FromMinutes(59));
        for (var i = 1; i < 5; i++)
        {
            await (await owner.DeleteAsync($"/api/gym/members/{ids[i]}")).AssertStatusAsync(HttpStatusCode.OK);
        }
        await (await owner.DeleteAsync($"/api/gym/members/{ids[5]}")).AssertErrorAsync(HttpStatusCode.TooManyRequests);

        // An hour after the first: only its permit is free again (a fixed window would have opened five).
        fx.Clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(TimeSpan.FromHours(1), fx.Clock.GetUtcNow() - t0);
        await (await owner.DeleteAsync($"/api/gym/members/{ids[5]}")).AssertStatusAsync(HttpStatusCode.OK);
        var limited = await owner.DeleteAsync($"/api/gym/members/{ids[6]}");
        await limited.AssertErrorAsync(HttpStatusCode.TooManyRequests);
        // The next permit is free when the call at 0:59 is an hour old.
        Assert.Equal("3540", limited.Headers.GetValues("Retry-After").Single());
        fx.Clock.Advance(TimeSpan.FromMinutes(59));
        for (var i = 6; i < 10; i++)
        {
            await (await owner.DeleteAsync($"/api/gym/members/{ids[i]}")).AssertStatusAsync(HttpStatusCode.OK);
        }
        await (await owner.DeleteAsync($"/api/gym/members/{ids[10]}")).AssertErrorAsync(HttpStatusCode.TooManyRequests);
    }
}
