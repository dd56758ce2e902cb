using System.Net;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Features.Members;
using Gymwire.Features.Zapier;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;

namespace Gymwire.Tests.Zapier;

/// <summary>
/// The trigger cache (docs/polling.md): a poll is answered from memory only while nothing it shows can have changed.
/// A committed write is in the next poll, a rolled-back one never; a write by another connection that bypasses the
/// server (the CLI, a second process) is seen at once on SQLite and within <see cref="NotifyReach"/> on PostgreSQL;
/// answers are byte-identical to uncached ones and never cross gyms; the entry bound holds.
/// </summary>
public abstract class TriggerCacheTests(GymwireFixture fx, ITestOutputHelper output)
{
    public sealed class Sqlite(SqliteGymwire f, ITestOutputHelper o) : TriggerCacheTests(f, o), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f, ITestOutputHelper o) : TriggerCacheTests(f, o), IClassFixture<PostgresGymwire>;

    /// <summary>The documented bound for a write from elsewhere to reach a PostgreSQL node's cache.</summary>
    public static readonly TimeSpan NotifyReach = TimeSpan.FromSeconds(2);

    private TriggerCache Cache => fx.Services.GetRequiredService<TriggerCache>();

    private async Task<(TestGym Gym, HttpClient Client)> GymWithReadKeyAsync()
    {
        var gym = await fx.CreateGymAsync();
        var key = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "poller", scopes = new[] { "read" } })).AssertStatusAsync(HttpStatusCode.Created);
        // On PostgreSQL nothing is cached until the node listens for other writers.
        await Eventually.TrueAsync(() => Task.FromResult(fx.Store == Store.Sqlite || Cache.Listening), what: "the trigger cache listening");
        return (gym, fx.Client(key.GetProperty("key").GetString()));
    }

    private static Member NewMember(Guid gymId, string userId, DateTime at) =>
        new() { Id = Guid.CreateVersion7(at), GymId = gymId, UserId = userId, Name = userId, Role = MemberRoles.Member, JoinedAt = at };

    private static async Task<string> PollAsync(HttpClient client, string query = "type=new_member")
    {
        var response = await client.GetAsync($"/api/zapier/triggers?{query}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    private static List<string> UserIds(string body) =>
        [.. JsonDocument.Parse(body).RootElement.EnumerateArray().Select(m => m.GetProperty("user_id").GetString()!)];

    private DateTime Now => fx.Clock.GetUtcNow().UtcDateTime;

    /// <summary>A context of its own, without the server's interceptors: writes as the CLI or another process do.</summary>
    private GymwireDbContext OutsideContext()
    {
        if (fx.Store == Store.Sqlite)
        {
            var b = new DbContextOptionsBuilder<SqliteGymwireDbContext>();
            DatabaseSetup.ConfigureSqlite(b, fx.ConnectionString);
            return new SqliteGymwireDbContext(b.Options);
        }
        var p = new DbContextOptionsBuilder<PostgresGymwireDbContext>();
        DatabaseSetup.ConfigurePostgres(p, fx.ConnectionString);
        return new PostgresGymwireDbContext(p.Options);
    }

    [Fact]
    public async Task A_repeated_poll_is_served_from_the_cache_byte_identical_and_a_committed_write_is_in_the_next_poll()
    {
        var (gym, client) = await GymWithReadKeyAsync();
        await fx.WithDbAsync(db => { db.Members.Add(NewMember(gym.GymId, "user_a", Now)); return db.SaveChangesAsync(); });

        var first = await PollAsync(client);
        Assert.True(Cache.TryGet(gym.GymId, "new_member", ZapierTriggers.Limit, Cache.Current(gym.GymId)!.Value, out _), "the answer is cached");
        Assert.Equal(first, await PollAsync(client));
        // limit=20 is the same answer as the default, from the same entry.
        Assert.Equal(first, await PollAsync(client, "type=new_member&limit=20"));

        for (var i = 0; i < 5; i++)
        {
            var userId = $"user_b{i}";
            await fx.WithDbAsync(db => { db.Members.Add(NewMember(gym.GymId, userId, Now.AddSeconds(i + 1))); return db.SaveChangesAsync(); });
            Assert.Equal(userId, UserIds(await PollAsync(client))[0]);
        }

        // An update and a delete are seen as well.
        await fx.WithDbAsync(async db =>
        {
            var m = await db.Members.SingleAsync(x => x.GymId == gym.GymId && x.UserId == "user_b4");
            m.Role = MemberRoles.Coach;
            return await db.SaveChangesAsync();
        });
        Assert.Contains("\"coach\"", await PollAsync(client));
        await fx.WithDbAsync(async db =>
        {
            db.Members.Remove(await db.Members.SingleAsync(x => x.GymId == gym.GymId && x.UserId == "user_b4"));
            return await db.SaveChangesAsync();
        });
        Assert.DoesNotContain("user_b4", UserIds(await PollAsync(client)));
    }

    [Fact]
    public async Task A_rolled_back_write_never_appears()
    {
        var (gym, client) = await GymWithReadKeyAsync();
        await PollAsync(client);
        await fx.WithDbAsync(async db =>
        {
            await using var tx = await db.Database.BeginTransactionAsync();
            db.Members.Add(NewMember(gym.GymId, "user_ghost", Now));
            await db.SaveChangesAsync();
            await tx.RollbackAsync();
            return 0;
        });
        Assert.DoesNotContain("user_ghost", UserIds(await PollAsync(client)));
        // A write committed in an explicit transaction appears once it commits.
        await fx.WithDbAsync(async db =>
        {
            await using var tx = await db.Database.BeginTransactionAsync();
            db.Members.Add(NewMember(gym.GymId, "user_real", Now));
            await db.SaveChangesAsync();
            await tx.CommitAsync();
            return 0;
        });
        Assert.Equal(["user_real"], UserIds(await PollAsync(client)));
    }

    [Fact]
    public async Task A_write_by_another_connection_that_bypasses_the_server_is_seen()
    {
        var (gym, client) = await GymWithReadKeyAsync();
        Assert.Empty(UserIds(await PollAsync(client)));
        Assert.Empty(UserIds(await PollAsync(client)));
        await using (var outside = OutsideContext())
        {
            outside.Members.Add(NewMember(gym.GymId, "user_cli", Now));
            await outside.SaveChangesAsync();
        }
        if (fx.Store == Store.Sqlite)
        {
            // PRAGMA data_version: the very next poll.
            Assert.Equal(["user_cli"], UserIds(await PollAsync(client)));
        }
        else
        {
            var deadline = DateTime.UtcNow + NotifyReach;
            await Eventually.TrueAsync(async () => UserIds(await PollAsync(client)).Contains("user_cli"), NotifyReach, "the NOTIFY to reach the cache");
            Assert.True(DateTime.UtcNow <= deadline + TimeSpan.FromMilliseconds(100));
        }
    }

    [Fact]
    public async Task A_gym_never_sees_another_gyms_cached_answer()
    {
        var (a, clientA) = await GymWithReadKeyAsync();
        var (b, clientB) = await GymWithReadKeyAsync();
        await fx.WithDbAsync(db =>
        {
            db.Members.Add(NewMember(a.GymId, "user_of_a", Now));
            db.Members.Add(NewMember(b.GymId, "user_of_b", Now));
            return db.SaveChangesAsync();
        });
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(["user_of_a"], UserIds(await PollAsync(clientA)));
            Assert.Equal(["user_of_b"], UserIds(await PollAsync(clientB)));
        }
        // A write to one gym leaves the other's answer as it was.
        await fx.WithDbAsync(db => { db.Members.Add(NewMember(a.GymId, "user_of_a2", Now.AddSeconds(1))); return db.SaveChangesAsync(); });
        Assert.Equal(["user_of_b"], UserIds(await PollAsync(clientB)));
        Assert.Equal(["user_of_a2", "user_of_a"], UserIds(await PollAsync(clientA)));
    }

    [Fact]
    public void The_entry_bound_holds_and_an_entry_is_small()
    {
        const int bound = 50;
        var database = fx.Services.GetRequiredService<IOptions<DatabaseOptions>>();
        using var cache = new TriggerCache(Options.Create(new TriggerCacheOptions { TriggerCacheSize = bound }), database,
            fx.Services.GetRequiredService<IServiceScopeFactory>());
        var stamp = new TriggerCache.Stamp(0, 0, 0);
        var now = Now;
        GC.Collect();
        var before = GC.GetTotalMemory(forceFullCollection: true);
        for (var gym = 0; gym < 10 * bound; gym++)
        {
            var items = Enumerable.Range(0, ZapierTriggers.Limit)
                .Select(i => (object)new NewMemberItem(Guid.NewGuid(), $"user_{gym:D6}_{i:D2}", MemberRoles.Member, now)).ToList();
            cache.Set(Guid.NewGuid(), "new_member", ZapierTriggers.Limit, stamp, items);
            Assert.True(cache.Count <= bound, $"{cache.Count} entries held, bound {bound}");
        }
        var held = cache.Count;
        var bytes = GC.GetTotalMemory(forceFullCollection: true) - before;
        output.WriteLine($"{held} entries of 20 new_member items: {bytes} bytes, {(held == 0 ? 0 : bytes / held)} per entry");
        Assert.InRange(held, 1, bound);
    }
}
