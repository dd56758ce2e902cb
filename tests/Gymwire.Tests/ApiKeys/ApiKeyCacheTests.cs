using System.Net;
using Gymwire.Features.ApiKeys;
using Gymwire.Infrastructure;
using Gymwire.Tests.Foundation;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Gymwire.Tests.ApiKeys;

/// <summary>The validated-key cache: polls skip the key query, yet revocation and expiry keep their meaning.</summary>
public abstract class ApiKeyCacheTests(ApiKeyFixture fx)
{
    public sealed class Sqlite(ApiKeySqlite f) : ApiKeyCacheTests(f), IClassFixture<ApiKeySqlite>;
    public sealed class Postgres(ApiKeyPostgres f) : ApiKeyCacheTests(f), IClassFixture<ApiKeyPostgres>;

    private TimeSpan Ttl => fx.Services.GetRequiredService<IOptions<ApiKeyOptions>>().Value.CacheTtl;

    [Fact]
    public async Task A_key_used_again_is_not_looked_up_again()
    {
        var gym = await fx.CreateGymAsync();
        var key = await CreateKeyAsync(gym, "poller", "read");
        using var client = fx.Client(key);
        await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        var before = fx.ApiKeyQueries.Count;
        for (var i = 0; i < 5; i++)
        {
            await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        }
        Assert.Equal(before, fx.ApiKeyQueries.Count);
    }

    [Fact]
    public async Task A_revocation_that_bypasses_this_node_takes_effect_within_the_poll_interval_not_the_ttl()
    {
        var gym = await fx.CreateGymAsync();
        var (key, id) = await CreateKeyWithIdAsync(gym);
        using var client = fx.Client(key);
        await (await client.GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);

        // As another process would on SQLite (or a revocation whose NOTIFY was lost): the row changes, this node is not told.
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        await fx.WithDbAsync(db => db.ApiKeys.Where(k => k.Id == id).ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, now)));
        if (fx.Store == Store.Sqlite)
        {
            // Until the next poll the node still trusts its cached copy (on PostgreSQL no NOTIFY was sent, the same).
            await (await client.GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);
        }
        var poll = fx.Services.GetRequiredService<IOptions<ApiKeyOptions>>().Value.RevocationPollInterval;
        Assert.True(poll < Ttl / 10);
        fx.Clock.Advance(poll);
        await Eventually.TrueAsync(async () => (await client.GetAsync("/api/gym/members")).StatusCode == HttpStatusCode.Unauthorized,
            what: "the poll to find the revocation");
        Assert.Contains("revoked", await (await client.GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Unauthorized), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Revoking_through_this_node_evicts_the_cached_key_at_once()
    {
        var gym = await fx.CreateGymAsync();
        var (key, id) = await CreateKeyWithIdAsync(gym);
        using var client = fx.Client(key);
        await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        await (await gym.Owner().DeleteAsync($"/api/gym/api-keys/{id}")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Contains("revoked", await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertErrorAsync(HttpStatusCode.Unauthorized), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_cached_key_expires_at_its_exact_expires_at()
    {
        var gym = await fx.CreateGymAsync();
        var expiresAt = fx.Clock.GetUtcNow().AddSeconds(10);
        var created = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "short", expires_at = expiresAt })).AssertStatusAsync(HttpStatusCode.Created);
        using var client = fx.Client(created.GetProperty("key").GetString());
        await (await client.GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.True(TimeSpan.FromSeconds(10) < Ttl, "the test needs the entry to outlive the key");
        fx.Clock.Advance(TimeSpan.FromSeconds(10) - TimeSpan.FromMilliseconds(1));
        await (await client.GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);
        fx.Clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Contains("expired", await (await client.GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Unauthorized), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_keys_are_not_cached_so_a_key_stored_after_a_miss_works_at_once()
    {
        var gym = await fx.CreateGymAsync();
        var cache = fx.Services.GetRequiredService<ApiKeyCache>();
        var plain = ApiKeyFormat.Generate();
        using var client = fx.Client(plain);
        await (await client.GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        var before = cache.Count;
        for (var i = 0; i < 20; i++)
        {
            await (await fx.Client(ApiKeyFormat.Generate()).GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        }
        Assert.Equal(before, cache.Count);

        // The same key comes into existence (as if created by another node a moment after the miss).
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        await fx.WithDbAsync(async db =>
        {
            db.ApiKeys.Add(new ApiKey
            {
                Id = Guid.CreateVersion7(), GymId = gym.GymId, Name = "late", KeyPrefix = ApiKeyFormat.DisplayPrefix(plain),
                KeyHash = Secrets.Sha256(plain), Scopes = "read", CreatedAt = now,
            });
            return await db.SaveChangesAsync();
        });
        await (await client.GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);
    }

    private static async Task<string> CreateKeyAsync(TestGym gym, string name, params string[] scopes)
    {
        var created = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name, scopes })).AssertStatusAsync(HttpStatusCode.Created);
        return created.GetProperty("key").GetString()!;
    }

    internal static async Task<(string Key, Guid Id)> CreateKeyWithIdAsync(TestGym gym)
    {
        var created = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "cached", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        return (created.GetProperty("key").GetString()!, created.GetProperty("id").GetGuid());
    }
}

/// <summary>A cache of two entries.</summary>
public abstract class ApiKeyCacheSettingsTests(ApiKeyCacheSettingsTests.Fixture fx)
{
    public sealed class Sqlite(SqliteFixture f) : ApiKeyCacheSettingsTests(f), IClassFixture<SqliteFixture>;
    public sealed class Postgres(PostgresFixture f) : ApiKeyCacheSettingsTests(f), IClassFixture<PostgresFixture>;

    public abstract class Fixture(Store store) : ApiKeyFixture(store)
    {
        protected override IEnumerable<KeyValuePair<string, string>> Settings() => [new("ApiKeys:CacheSize", "2")];
    }

    public sealed class SqliteFixture() : Fixture(Store.Sqlite);

    public sealed class PostgresFixture() : Fixture(Store.Postgres);

    [Fact]
    public async Task The_cache_holds_at_most_CacheSize_keys_and_every_key_keeps_working()
    {
        var gym = await fx.CreateGymAsync();
        var cache = fx.Services.GetRequiredService<ApiKeyCache>();
        var keys = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            keys.Add((await ApiKeyCacheTests.CreateKeyWithIdAsync(gym)).Key);
        }
        for (var round = 0; round < 2; round++)
        {
            foreach (var key in keys)
            {
                await (await fx.Client(key).GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);
                Assert.InRange(cache.Count, 1, 2);
            }
        }
    }
}

/// <summary>The cache on its own: TTL on the fake clock, and loads that race a revocation.</summary>
public sealed class ApiKeyCacheUnitTests
{
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 4, 16, 12, 0, 0, TimeSpan.Zero));
    private readonly ApiKeyCache _cache;
    private readonly byte[] _hash = Secrets.Sha256(ApiKeyFormat.Generate());
    private readonly CachedApiKey _key = new(Guid.NewGuid(), Guid.NewGuid(), "k", "read", null, null);

    public ApiKeyCacheUnitTests() => _cache = new ApiKeyCache(Options.Create(new ApiKeyOptions { CacheTtl = TimeSpan.FromSeconds(30) }), _clock);

    [Fact]
    public void An_entry_is_trusted_for_the_ttl_and_not_a_tick_longer()
    {
        _cache.Add(_hash, _key, _cache.Generation);
        _clock.Advance(TimeSpan.FromSeconds(30) - TimeSpan.FromTicks(1));
        Assert.True(_cache.TryGet(_hash, out var hit));
        Assert.Equal(_key, hit);
        _clock.Advance(TimeSpan.FromTicks(1));
        Assert.False(_cache.TryGet(_hash, out _));
        Assert.Equal(0, _cache.Count);
    }

    [Fact]
    public void A_ttl_of_zero_switches_the_cache_off_and_is_a_valid_setting()
    {
        var off = new ApiKeyCache(Options.Create(new ApiKeyOptions { CacheTtl = TimeSpan.Zero }), _clock);
        Assert.False(off.Enabled);
        off.Add(_hash, _key, off.Generation);
        Assert.False(off.TryGet(_hash, out _));
        Assert.Equal(0, off.Count);

        static bool Valid(ApiKeyOptions o) => System.ComponentModel.DataAnnotations.Validator.TryValidateObject(
            o, new System.ComponentModel.DataAnnotations.ValidationContext(o), null, validateAllProperties: true);
        Assert.True(Valid(new ApiKeyOptions { CacheTtl = TimeSpan.Zero }));
        Assert.False(Valid(new ApiKeyOptions { CacheTtl = TimeSpan.FromHours(2) }));
        Assert.False(Valid(new ApiKeyOptions { CacheSize = 0 }));
    }

    [Fact]
    public void A_load_that_started_before_a_revocation_is_not_cached()
    {
        var generation = _cache.Generation; // the validator reads this, then queries the database ...
        _cache.Evict(_key.Id);              // ... while the key is revoked and evicted ...
        _cache.Add(_hash, _key, generation); // ... and then tries to cache the row it read before the revocation.
        Assert.False(_cache.TryGet(_hash, out _));
    }

    [Fact]
    public void Evict_removes_only_the_named_key_and_clear_removes_all()
    {
        var otherHash = Secrets.Sha256(ApiKeyFormat.Generate());
        _cache.Add(_hash, _key, _cache.Generation);
        _cache.Add(otherHash, _key with { Id = Guid.NewGuid() }, _cache.Generation);
        _cache.Evict(_key.Id);
        Assert.False(_cache.TryGet(_hash, out _));
        Assert.True(_cache.TryGet(otherHash, out _));
        _cache.Clear();
        Assert.False(_cache.TryGet(otherHash, out _));
    }
}

/// <summary>Two nodes on one PostgreSQL database: a revocation through one is honoured by the other at once.</summary>
public sealed class ApiKeyMultiNodeTests(ApiKeyPostgres fx) : IClassFixture<ApiKeyPostgres>
{
    [Fact]
    public async Task A_key_revoked_through_one_node_is_rejected_by_another_without_waiting_for_the_ttl()
    {
        var gym = await fx.CreateGymAsync();
        var (key, id) = await ApiKeyCacheTests.CreateKeyWithIdAsync(gym);

        // A second node: same configuration, same database, same (frozen) clock, so the TTL never runs out here.
        var builder = GymwireApp.CreateBuilder(fx.Arguments(fx.ConnectionString), b =>
        {
            b.Services.AddSingleton<TimeProvider>(fx.Clock);
            b.Logging.ClearProviders();
        });
        await using var second = GymwireApp.Build(builder);
        await second.StartAsync();
        try
        {
            var listener = second.Services.GetRequiredService<PostgresNotifications>();
            await Eventually.TrueAsync(() => Task.FromResult(listener.Listening), TimeSpan.FromSeconds(20), "the second node to listen");
            var address = second.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
                .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses.First();
            using var onSecond = new HttpClient { BaseAddress = new Uri(address) };
            onSecond.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
            await (await onSecond.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
            Assert.True(second.Services.GetRequiredService<ApiKeyCache>().Count >= 1);

            await (await gym.Owner().DeleteAsync($"/api/gym/api-keys/{id}")).AssertStatusAsync(HttpStatusCode.OK);
            await Eventually.TrueAsync(async () => (await onSecond.GetAsync("/api/zapier/triggers?type=new_member")).StatusCode == HttpStatusCode.Unauthorized,
                TimeSpan.FromSeconds(10), "the second node to reject the revoked key");
            Assert.Contains("revoked", await (await onSecond.GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Unauthorized), StringComparison.Ordinal);
        }
        finally
        {
            await second.StopAsync();
        }
    }

    [Fact]
    public async Task The_revocation_listener_reconnects_after_losing_its_connection()
    {
        var listener = fx.Services.GetRequiredService<PostgresNotifications>();
        await Eventually.TrueAsync(() => Task.FromResult(listener.Listening), TimeSpan.FromSeconds(20), "the node to listen");
        var gym = await fx.CreateGymAsync();
        var (key, id) = await ApiKeyCacheTests.CreateKeyWithIdAsync(gym);
        await (await fx.Client(key).GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);

        // Kill the listening backend, as a database restart or a network cut would.
        await fx.WithDbAsync(db => db.Database.ExecuteSqlRawAsync(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'gymwire notifications' AND datname = current_database()"));
        await Eventually.TrueAsync(() => Task.FromResult(!listener.Listening), TimeSpan.FromSeconds(20), "the listener to notice");
        await Eventually.TrueAsync(() => Task.FromResult(listener.Listening), TimeSpan.FromSeconds(20), "the listener to reconnect");

        // A revocation that bypasses this node's own eviction reaches it through the new connection.
        await fx.WithDbAsync(async db =>
        {
            await using var transaction = await db.Database.BeginTransactionAsync();
            await db.ApiKeys.Where(k => k.Id == id).ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, DateTime.UtcNow));
            await ApiKeyRevocations.NotifyAsync(db, id, default);
            await transaction.CommitAsync();
            return 0;
        });
        await Eventually.TrueAsync(async () => (await fx.Client(key).GetAsync("/api/gym/members")).StatusCode == HttpStatusCode.Unauthorized,
            TimeSpan.FromSeconds(10), "the node to evict the key");
    }
}
