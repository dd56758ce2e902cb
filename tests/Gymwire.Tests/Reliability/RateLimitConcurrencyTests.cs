using System.Net;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Reliability;

/// <summary>
/// R8 "rate limits hold under concurrency", for every policy of the documented table (triggers are in
/// Zapier/RateLimitTests): 100 simultaneous callers get exactly the limit admitted, the rest 429 with
/// Retry-After, and what the limited calls would have written does not exist. The fixture's clock is fake, so
/// no window rolls over during a burst.
/// </summary>
public abstract class RateLimitConcurrencyTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : RateLimitConcurrencyTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : RateLimitConcurrencyTests(f), IClassFixture<PostgresGymwire>;

    private async Task<string> KeyAsync(TestGym gym) =>
        (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("key").GetString()!;

    private static void AssertAdmitted(HttpResponseMessage[] responses, HttpStatusCode success, int limit)
    {
        var statuses = string.Join(", ", responses.GroupBy(r => (int)r.StatusCode).Select(g => $"{g.Key}×{g.Count()}"));
        Assert.True(responses.Count(r => r.StatusCode == success) == limit, $"expected exactly {limit} admitted: {statuses}");
        Assert.True(responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests) == responses.Length - limit, $"the rest should be 429: {statuses}");
        Assert.All(responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests), r => Assert.True(r.Headers.Contains("Retry-After")));
    }

    [Fact]
    public async Task Actions_admit_exactly_30_per_gym_across_concurrent_keys_and_the_rest_write_nothing()
    {
        var gym = await fx.CreateGymAsync();
        using var first = fx.Client(await KeyAsync(gym));
        using var second = fx.Client(await KeyAsync(gym));
        // The limit is per gym: two keys of one gym share it.
        var responses = await Task.WhenAll(Enumerable.Range(0, 100).Select(i =>
            (i % 2 == 0 ? first : second).PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = $"Burst {i}" })));
        AssertAdmitted(responses, HttpStatusCode.Created, 30);
        Assert.Equal(30, await fx.WithDbAsync(db => db.Leads.CountAsync(l => l.GymId == gym.GymId)));
    }

    [Fact]
    public async Task Mutations_admit_exactly_30_per_user_under_concurrency_and_the_rest_write_nothing()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var responses = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => owner.PostJsonAsync("/api/gym/members", new { name = $"Burst {i}" })));
        AssertAdmitted(responses, HttpStatusCode.Created, 30);
        Assert.Equal(30, await fx.WithDbAsync(db => db.Members.CountAsync(m => m.GymId == gym.GymId)));
    }

    [Fact]
    public async Task Destructive_operations_admit_exactly_5_per_user_under_concurrency_and_the_rest_change_nothing()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var ids = new List<Guid>();
        for (var i = 0; i < 20; i++)
        {
            ids.Add((await (await owner.PostJsonAsync("/api/gym/members", new { name = $"M{i}" })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid());
        }
        var responses = await Task.WhenAll(ids.Select(id => owner.DeleteAsync($"/api/gym/members/{id}")));
        AssertAdmitted(responses, HttpStatusCode.OK, 5);
        Assert.Equal(5, await fx.WithDbAsync(db => db.Members.CountAsync(m => m.GymId == gym.GymId && m.LeftAt != null)));
    }
}
