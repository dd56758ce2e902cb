using System.Net;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Zapier;

/// <summary>The documented limits, with the fake clock moving the windows (no waiting).</summary>
public abstract class RateLimitTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : RateLimitTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : RateLimitTests(f), IClassFixture<PostgresGymwire>;

    private async Task<string> KeyAsync(TestGym gym) =>
        (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read", "write" } })).JsonAsync()).GetProperty("key").GetString()!;

    [Fact]
    public async Task The_61st_trigger_call_in_a_minute_gets_429_with_retry_after_and_the_next_window_is_open()
    {
        var gym = await fx.CreateGymAsync();
        using var client = fx.Client(await KeyAsync(gym));
        for (var i = 0; i < 60; i++)
        {
            await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        }
        fx.Clock.Advance(TimeSpan.FromSeconds(20));
        var limited = await client.GetAsync("/api/zapier/triggers?type=new_member");
        var message = await limited.AssertErrorAsync(HttpStatusCode.TooManyRequests);
        var retryAfter = int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 39, 40);
        Assert.Equal($"Rate limit exceeded: 60 requests a minute per gym for Zapier triggers; retry after {retryAfter} seconds", message);

        // Another gym has its own budget; a second key of the same gym shares it.
        var other = await fx.CreateGymAsync();
        await (await fx.Client(await KeyAsync(other)).GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        await (await fx.Client(await KeyAsync(gym)).GetAsync("/api/zapier/triggers?type=new_member")).AssertErrorAsync(HttpStatusCode.TooManyRequests);

        fx.Clock.Advance(TimeSpan.FromSeconds(40));
        await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task No_minute_admits_more_than_60_polls_across_a_window_edge()
    {
        // Issue #25: fixed windows admitted 118 polls in 7 s around an edge. The limit is a sliding window now.
        var gym = await fx.CreateGymAsync();
        using var client = fx.Client(await KeyAsync(gym));
        var admitted = new List<DateTimeOffset>();
        async Task PollAsync(int times)
        {
            for (var i = 0; i < times; i++)
            {
                var response = await client.GetAsync("/api/zapier/triggers?type=new_member");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    admitted.Add(fx.Clock.GetUtcNow());
                }
                else
                {
                    await response.AssertErrorAsync(HttpStatusCode.TooManyRequests);
                }
            }
        }

        await PollAsync(10);
        fx.Clock.Advance(TimeSpan.FromSeconds(56));
        await PollAsync(60);
        Assert.Equal(60, admitted.Count);
        // Past the edge of the first minute: only the first ten polls' permits are free again, one by one as they age.
        fx.Clock.Advance(TimeSpan.FromSeconds(4));
        await PollAsync(60);
        Assert.Equal(70, admitted.Count);
        var limited = await client.GetAsync("/api/zapier/triggers?type=new_member");
        await limited.AssertErrorAsync(HttpStatusCode.TooManyRequests);
        Assert.Equal("56", limited.Headers.GetValues("Retry-After").Single());
        fx.Clock.Advance(TimeSpan.FromSeconds(3));
        await PollAsync(60);
        Assert.Equal(70, admitted.Count);
        fx.Clock.Advance(TimeSpan.FromSeconds(53));
        await PollAsync(60);
        Assert.Equal(120, admitted.Count);

        // However the 7 s around each edge are cut, no minute admitted more than 60.
        foreach (var start in admitted)
        {
            Assert.True(admitted.Count(t => t >= start && t < start + TimeSpan.FromMinutes(1)) <= 60, $"more than 60 admitted in the minute from {start:O}");
        }
    }

    [Fact]
    public async Task Actions_allow_30_a_minute_per_gym_and_a_limited_action_writes_nothing()
    {
        var gym = await fx.CreateGymAsync();
        using var client = fx.Client(await KeyAsync(gym));
        for (var i = 0; i < 30; i++)
        {
            await (await client.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = $"L{i}" })).AssertStatusAsync(HttpStatusCode.Created);
        }
        var limited = await client.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "over" });
        var message = await limited.AssertErrorAsync(HttpStatusCode.TooManyRequests);
        Assert.Equal($"Rate limit exceeded: 30 requests a minute per gym for Zapier actions; retry after {RetryAfter(limited)} seconds", message);
        Assert.Equal(30, await fx.WithDbAsync(db => Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.CountAsync(db.Leads, l => l.GymId == gym.GymId)));
    }

    [Fact]
    public async Task Mutations_allow_30_a_minute_and_destructive_operations_5_an_hour_per_user()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var ids = new List<Guid>();
        for (var i = 0; i < 30; i++)
        {
            ids.Add((await (await owner.PostJsonAsync("/api/gym/members", new { name = $"M{i}" })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid());
        }
        var over = await owner.PostJsonAsync("/api/gym/members", new { name = "over" });
        Assert.Equal($"Rate limit exceeded: 30 requests a minute per user for standard mutations; retry after {RetryAfter(over)} seconds",
            await over.AssertErrorAsync(HttpStatusCode.TooManyRequests));

        for (var i = 0; i < 5; i++)
        {
            await (await owner.DeleteAsync($"/api/gym/members/{ids[i]}")).AssertStatusAsync(HttpStatusCode.OK);
        }
        var limited = await owner.DeleteAsync($"/api/gym/members/{ids[5]}");
        var message = await limited.AssertErrorAsync(HttpStatusCode.TooManyRequests);
        Assert.InRange(RetryAfter(limited), 3500, 3600);
        Assert.Equal($"Rate limit exceeded: 5 successful requests an hour per user for destructive operations; retry after {RetryAfter(limited)} seconds", message);

        // Reads are not mutations.
        await (await owner.GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);
        fx.Clock.Advance(TimeSpan.FromHours(1));
        await (await owner.DeleteAsync($"/api/gym/members/{ids[5]}")).AssertStatusAsync(HttpStatusCode.OK);
    }

    private static int RetryAfter(HttpResponseMessage response) =>
        int.Parse(response.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task Concurrent_callers_never_get_more_than_the_limit()
    {
        var gym = await fx.CreateGymAsync();
        using var client = fx.Client(await KeyAsync(gym));
        var responses = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => client.GetAsync("/api/zapier/triggers?type=new_payment")));
        Assert.Equal(60, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        Assert.Equal(40, responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));
    }
}
