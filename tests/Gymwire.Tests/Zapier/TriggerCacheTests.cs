using System.Diagnostics.Metrics;
using System.Net;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Features.Members;
using Gymwire.Features.Zapier;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;

namespace Gymwire.Tests.Zapier;

/// <summary>
/// The trigger cache (docs/polling.md): a poll is answered from memory only while nothing it shows can have changed.
/// A committed write is in the next poll, a rolled-back one never; a write by another connection that bypasses the
/// server (the CLI, a second process) is seen at once on SQLite and within <see cref="NotifyReach"/> on PostgreSQL;
/// answers are byte-identical to uncached ones and never cross gyms; the byte bound and the bound on gym versions hold,
/// and lookups are counted.
/// </summary>
public abstract class TriggerCacheTests(GymwireFixture fx, ITestOutputHelper output)
{
    public sealed class Sqlite(SqliteGymwire f, ITestOutputHelper o) : TriggerCacheTests(f, o), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f, ITestOutputHelper o) : TriggerCacheTests(f, o), IClassFixture<PostgresGymwire>;

    /// <summary>The documented bound for a write from elsewhere to reach a PostgreSQL node's cache.</summary>
    public static readonly TimeSpan NotifyReach = TimeSpan.FromSeconds(2);

    /// <summary>
    /// What a reach measured by checking a cache's stamp every few milliseconds may exceed the true reach by: the wait
    /// between checks and a busy machine's delay in resuming it.
    /// </summary>
    public static readonly TimeSpan ObservationSlack = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// PostgreSQL: returns once each cache has handled every trigger notification committed before the call (such as
    /// that of a gym's creation), so that a test reading a stamp's move as its own write's arrival is not misled by an
    /// earlier one arriving late. PostgreSQL delivers notifications in commit order and a node handles them one by one
    /// on its listening connection, so once one naming a fresh id has moved that id's stamp, every earlier one has been handled.
    /// </summary>
    public static async Task HandledEarlierNotificationsAsync(IServiceProvider services, params TriggerCache[] caches)
    {
        var marker = Guid.NewGuid();
        var before = caches.Select(c => c.Current(marker)).ToArray();
        await using (var scope = services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<GymwireDbContext>().Database
                .ExecuteSqlAsync($"SELECT pg_notify({TriggerCacheChannel.Channel}, {marker.ToString()})");
        }
        await Eventually.TrueAsync(() => Task.FromResult(caches.Select((c, i) => c.Current(marker) != before[i]).All(moved => moved)),
            what: "every cache handling a marker notification");
    }

    /// <summary>
    /// How long after <paramref name="since"/> <paramref name="reached"/> (an in-memory check, cheap to repeat) was
    /// first seen true; waits up to 20 s, well past <see cref="NotifyReach"/>, so that a slow reach fails on its measured
    /// time rather than on a timeout.
    /// </summary>
    public static async Task<TimeSpan> ReachAsync(DateTime since, Func<bool> reached, string what)
    {
        while (!reached())
        {
            Assert.True(DateTime.UtcNow - since < TimeSpan.FromSeconds(20), $"{what}: never");
            await Task.Delay(5);
        }
        return DateTime.UtcNow - since;
    }

    /// <summary>
    /// Polls (through <paramref name="poll"/>) until it says the answer came from the cache, at most 40 times a quarter
    /// second apart. A gym's trigger polls are limited to 60 a minute and the fake clock never moves the window here, so
    /// a poll every few milliseconds would use them up and fail the rest of the test with a 429.
    /// </summary>
    private static async Task PollUntilCachedAsync(Func<Task<bool>> poll)
    {
        for (var polls = 1; !await poll(); polls++)
        {
            Assert.True(polls < 40, "a poll served from the cache within 40 polls");
            await Task.Delay(250);
        }
    }

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

        // On PostgreSQL the write's notification reaches this node's own listener a moment after the commit and moves the
        // gym's stamp once more, so an answer cached before it arrives is read again once: wait for it. On SQLite a
        // background write to the file can move the stamp too. Poll until the answer is cached.
        if (fx.Store == Store.Postgres)
        {
            await HandledEarlierNotificationsAsync(fx.Services, Cache);
        }
        var first = "";
        await PollUntilCachedAsync(async () =>
        {
            first = await PollAsync(client);
            return Cache.TryGet(gym.GymId, "new_member", ZapierTriggers.Limit, Cache.Current(gym.GymId)!.Value, out _);
        });
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
        if (fx.Store == Store.Postgres)
        {
            await HandledEarlierNotificationsAsync(fx.Services, Cache);
        }
        Assert.Empty(UserIds(await PollAsync(client)));
        Assert.Empty(UserIds(await PollAsync(client)));
        var before = Cache.Current(gym.GymId);
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
            // The reach is measured on the cache's stamp for the gym, which only this write's notification can move now,
            // rather than by polling over HTTP: a poll's round trip on a busy machine is not the server's reach, and
            // polls every few milliseconds would run into the gym's 60 a minute. One poll then shows what it means.
            var reach = await ReachAsync(DateTime.UtcNow, () => Cache.Current(gym.GymId) != before, "the NOTIFY to reach the cache");
            Assert.True(reach <= NotifyReach + ObservationSlack, $"the NOTIFY reached the cache after {reach.TotalMilliseconds:F0} ms");
            Assert.Equal(["user_cli"], UserIds(await PollAsync(client)));
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

    /// <summary>A cache apart from the server's, on the fixture's database, with its own bound.</summary>
    private TriggerCache NewCache(long bytes, int maxTrackedGyms = 100_000)
    {
        var cache = new TriggerCache(Options.Create(new TriggerCacheOptions { TriggerCacheBytes = bytes }),
            fx.Services.GetRequiredService<IOptions<DatabaseOptions>>(), fx.Services.GetRequiredService<IServiceScopeFactory>(),
            fx.Services.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>(), fx.Services.GetRequiredService<ZapierMetrics>())
        {
            MaxTrackedGyms = maxTrackedGyms,
        };
        // On PostgreSQL nothing is cached unless listening; this cache hears nothing, and the tests below write nothing.
        cache.SetListening(true);
        return cache;
    }

    private List<object> Members(int count, string prefix) =>
        [.. Enumerable.Range(0, count).Select(i => (object)new NewMemberItem(Guid.NewGuid(), $"{prefix}_{i:D3}", MemberRoles.Member, Now))];

    [Fact]
    public void The_byte_bound_holds_for_answers_of_every_size_and_an_entry_costs_about_what_it_counts()
    {
        const long bound = 256 * 1024;
        using var cache = NewCache(bound);
        var stamp = new TriggerCache.Stamp(0, 0);
        var random = new Random(31);
        for (var gym = 0; gym < 2_000; gym++)
        {
            // 1 to 100 items, with user ids of different lengths: answers from about 150 bytes to 20 KB.
            var answer = cache.Answer(Members(random.Next(1, ZapierTriggers.MaxLimit + 1), $"user_{new string('x', random.Next(1, 60))}"));
            cache.Set(Guid.NewGuid(), "new_member", ZapierTriggers.Limit, stamp, answer);
            Assert.True(cache.Bytes <= bound, $"{cache.Bytes} bytes held, bound {bound}");
        }
        Assert.InRange(cache.Count, 10, 2_000);
        Assert.InRange(cache.Bytes, bound / 2, bound);

        // One answer larger than the whole bound is not kept, and what is held stays within it.
        var huge = cache.Answer(Members(ZapierTriggers.MaxLimit, new string('y', 4_000)));
        Assert.True(huge.Json.Length > bound);
        var hugeGym = Guid.NewGuid();
        cache.Set(hugeGym, "new_member", ZapierTriggers.MaxLimit, stamp, huge);
        Assert.False(cache.TryGet(hugeGym, "new_member", ZapierTriggers.MaxLimit, stamp, out _));
        Assert.True(cache.Bytes <= bound);

        // What an entry takes on the heap beyond its JSON, against TriggerCache.EntryOverhead (printed: the server
        // allocates in the background, so the figure is indicative).
        const int entries = 5_000;
        using var big = NewCache(1024L * 1024 * 1024);
        var answers = Enumerable.Range(0, entries).Select(_ => big.Answer(Members(ZapierTriggers.Limit, "user_m"))).ToList();
        var before = GC.GetTotalMemory(forceFullCollection: true);
        foreach (var answer in answers)
        {
            big.Set(Guid.NewGuid(), "new_member", ZapierTriggers.Limit, stamp, answer);
        }
        var grown = GC.GetTotalMemory(forceFullCollection: true) - before;
        output.WriteLine($"{entries} entries of {answers[0].Json.Length} bytes of JSON: {grown / entries} bytes each on the heap beyond it, " +
            $"{TriggerCache.EntryOverhead} counted");
        GC.KeepAlive(answers);
    }

    [Fact]
    public void The_gym_versions_are_bounded_and_a_forgotten_gym_never_serves_an_answer_read_before_its_last_write()
    {
        const int tracked = 8;
        using var cache = NewCache(1024 * 1024, tracked);
        var answer = cache.Answer(Members(3, "user_p"));
        // Versions are compared rather than answers looked up where an answer should be served: on SQLite a
        // background write to the file (the dispatcher's) would move the data version and make the lookup miss.
        long VersionOf(Guid gym) => cache.Current(gym)!.Value.GymVersion;

        // Gym A's answer stamped before any write to A, when A has no version of its own; then A is written.
        var a = Guid.NewGuid();
        var beforeWrite = cache.Current(a)!.Value;
        cache.Set(a, "new_member", ZapierTriggers.Limit, beforeWrite, answer);
        cache.Invalidate(a);
        Assert.False(cache.TryGet(a, "new_member", ZapierTriggers.Limit, cache.Current(a), out _));

        // Gym B's answer read after its write.
        var b = Guid.NewGuid();
        cache.Invalidate(b);
        var afterWrite = VersionOf(b);

        // Writes to many other gyms push A and B out of the versions kept.
        for (var i = 0; i < 10 * tracked; i++)
        {
            cache.Invalidate(Guid.NewGuid());
            Assert.InRange(cache.TrackedGyms, 1, tracked);
            // A's answer from before its write is never served again, however its version is forgotten.
            Assert.NotEqual(beforeWrite.GymVersion, VersionOf(a));
            Assert.False(cache.TryGet(a, "new_member", ZapierTriggers.Limit, cache.Current(a), out _));
        }
        // B was forgotten too: its answer is read again once (never stale), under a version that then holds.
        Assert.NotEqual(afterWrite, VersionOf(b));
        Assert.Equal(VersionOf(b), VersionOf(b));

        // A gym among the most recently written keeps its version, so its answer, through a pruning.
        while (cache.TrackedGyms != tracked - 1)
        {
            cache.Invalidate(Guid.NewGuid());
        }
        var c = Guid.NewGuid();
        cache.Invalidate(c);
        var ofC = VersionOf(c);
        cache.Invalidate(Guid.NewGuid());
        Assert.True(cache.TrackedGyms < tracked, "a pruning ran");
        Assert.Equal(ofC, VersionOf(c));

        // Everything invalidated (notifications missed): every gym's version moves.
        cache.InvalidateAll();
        Assert.Equal(0, cache.TrackedGyms);
        Assert.NotEqual(ofC, VersionOf(c));
        Assert.NotEqual(beforeWrite.GymVersion, VersionOf(a));
    }

    [Fact]
    public async Task Lookups_are_counted_as_hit_miss_stale_or_bypass()
    {
        using var lookups = new MetricCollector<long>(fx.Services.GetRequiredService<IMeterFactory>(), ZapierMetrics.MeterName,
            "gymwire.zapier.trigger_cache.lookups");
        var (gym, client) = await GymWithReadKeyAsync();
        long Count(string outcome) => lookups.GetMeasurementSnapshot()
            .Where(m => Equals(m.Tags[ZapierMetrics.TypeTag], "new_session") && Equals(m.Tags[ZapierMetrics.OutcomeTag], outcome)).Sum(m => m.Value);

        long All() => lookups.GetMeasurementSnapshot().Where(m => Equals(m.Tags[ZapierMetrics.TypeTag], "new_session")).Sum(m => m.Value);

        if (fx.Store == Store.Postgres)
        {
            // The gym's creation's notification, arriving after the first poll, would make the next one stale.
            await HandledEarlierNotificationsAsync(fx.Services, Cache);
        }
        await PollAsync(client, "type=new_session");
        Assert.Equal(1, Count(ZapierMetrics.CacheMiss));
        // Served from memory (on SQLite a background write to the file, such as the dispatcher's, can make one stale).
        await PollUntilCachedAsync(async () => { await PollAsync(client, "type=new_session"); return Count(ZapierMetrics.CacheHit) >= 1; });
        var before = All();
        var staleBefore = Count(ZapierMetrics.CacheStale);
        await fx.WithDbAsync(db =>
        {
            db.TrainingSessions.Add(new Gymwire.Features.Training.TrainingSession
            {
                Id = Guid.CreateVersion7(), GymId = gym.GymId, UserId = "user_s", SessionType = "boxing",
                Date = DateOnly.FromDateTime(Now), DurationMins = 60, CreatedAt = Now,
            });
            return db.SaveChangesAsync();
        });
        // The answer kept is older than the write: one stale lookup, and the write is in the answer.
        Assert.Contains("user_s", await PollAsync(client, "type=new_session"));
        Assert.Equal(staleBefore + 1, Count(ZapierMetrics.CacheStale));
        Assert.Equal(before + 1, All());
        // Cursor polls never look the cache up.
        await PollAsync(client, "type=new_session&after_sequence=0");
        Assert.Equal(before + 1, All());
        // No stamp to compare (PostgreSQL not listening, SQLite's data_version unreadable): counted as bypass.
        Assert.False(Cache.TryGet(gym.GymId, "new_session", ZapierTriggers.Limit, null, out _));
        Assert.Equal(1, Count(ZapierMetrics.CacheBypass));
    }

    [Fact]
    public async Task The_former_count_bound_setting_stops_the_server_at_start_naming_its_replacement()
    {
        var builder = GymwireApp.CreateBuilder([.. fx.Arguments(fx.ConnectionString), "--Zapier:TriggerCacheSize=10000"],
            b => b.Logging.ClearProviders());
        await using var app = GymwireApp.Build(builder);
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("Zapier:TriggerCacheBytes", e.Message, StringComparison.Ordinal);
    }
}
