using System.Data.Common;
using System.Net;
using System.Text.Json;
using Gymwire.Features.ApiKeys;
using Gymwire.Tests.Foundation;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Tests.ApiKeys;

public abstract class ApiKeyTests(ApiKeyFixture fx)
{
    public sealed class Sqlite(ApiKeySqlite f) : ApiKeyTests(f), IClassFixture<ApiKeySqlite>;
    public sealed class Postgres(ApiKeyPostgres f) : ApiKeyTests(f), IClassFixture<ApiKeyPostgres>;

    [Fact]
    public async Task Create_returns_the_key_once_with_documented_defaults_and_list_shows_prefixes_only()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var created = await (await owner.PostRawAsync("/api/gym/api-keys", "{}")).AssertStatusAsync(HttpStatusCode.Created);
        var key = created.GetProperty("key").GetString()!;
        Assert.True(ApiKeyFormat.IsWellFormed(key));
        Assert.Equal("Default", created.GetProperty("name").GetString());
        Assert.Equal(["read"], created.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()));
        Assert.Equal(key[..11], created.GetProperty("key_prefix").GetString());
        Assert.True(created.GetProperty("is_active").GetBoolean());
        Assert.Equal(JsonValueKind.Null, created.GetProperty("last_used").ValueKind);

        var list = await (await owner.GetAsync("/api/gym/api-keys")).AssertStatusAsync(HttpStatusCode.OK);
        var listed = Assert.Single(list.GetProperty("keys").EnumerateArray());
        Assert.Equal(
            ["id", "name", "key_prefix", "scopes", "last_used", "is_active", "created_at", "expires_at"],
            listed.EnumerateObject().Select(p => p.Name));
        Assert.DoesNotContain(key[11..], list.GetRawText(), StringComparison.Ordinal);

        var dump = await DatabaseDump.AllTextAsync(fx);
        Assert.DoesNotContain(key, dump, StringComparison.Ordinal);
        Assert.DoesNotContain(key[11..], dump, StringComparison.Ordinal);
        Assert.DoesNotContain(fx.Logs.Lines, l => l.Contains(key[11..], StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_key_authenticates_as_its_gym_with_its_name_and_scopes()
    {
        var gym = await fx.CreateGymAsync("Keyed Gym");
        var key = await CreateKeyAsync(gym, "Zapier Production", "read", "write");
        var me = await (await fx.Client(key).GetAsync("/api/me")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(gym.GymId, me.GetProperty("gym_id").GetGuid());
        Assert.Equal("Keyed Gym", me.GetProperty("gym_name").GetString());
        Assert.Equal("api_key", me.GetProperty("actor").GetString());
        Assert.Equal("Zapier Production", me.GetProperty("key_name").GetString());
        Assert.Equal(["read", "write"], me.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()));
    }

    [Fact]
    public async Task A_read_only_key_reads_but_gets_403_on_a_write()
    {
        var gym = await fx.CreateGymAsync();
        var key = await CreateKeyAsync(gym, "ro", "read");
        using var client = fx.Client(key);
        await (await client.GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);
        var message = await (await client.PostJsonAsync("/api/gym/members", new { name = "X" })).AssertErrorAsync(HttpStatusCode.Forbidden);
        Assert.Contains("'write'", message, StringComparison.Ordinal);
        Assert.Equal(0, await fx.WithDbAsync(db => Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.CountAsync(db.Members, m => m.GymId == gym.GymId)));
    }

    [Fact]
    public async Task A_write_only_key_cannot_read()
    {
        var gym = await fx.CreateGymAsync();
        var key = await CreateKeyAsync(gym, "wo", "write");
        using var client = fx.Client(key);
        await (await client.PostJsonAsync("/api/gym/members", new { name = "X" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Contains("'read'", await (await client.GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Forbidden), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_revoked_key_gets_401_at_once_and_stays_listed_as_inactive()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var created = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "to revoke" })).AssertStatusAsync(HttpStatusCode.Created);
        var key = created.GetProperty("key").GetString()!;
        using var client = fx.Client(key);
        await (await client.GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);

        var revoked = await (await owner.DeleteAsync($"/api/gym/api-keys/{created.GetProperty("id").GetGuid()}")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.False(revoked.GetProperty("is_active").GetBoolean());
        Assert.Contains("revoked", await (await client.GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Unauthorized), StringComparison.Ordinal);

        var list = await (await owner.GetAsync("/api/gym/api-keys")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.False(Assert.Single(list.GetProperty("keys").EnumerateArray()).GetProperty("is_active").GetBoolean());
    }

    [Fact]
    public async Task An_expired_key_gets_401()
    {
        var gym = await fx.CreateGymAsync();
        var expiresAt = fx.Clock.GetUtcNow().AddHours(1);
        var created = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "rolling", expires_at = expiresAt })).AssertStatusAsync(HttpStatusCode.Created);
        using var client = fx.Client(created.GetProperty("key").GetString());
        await (await client.GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);
        fx.Clock.Advance(TimeSpan.FromHours(1));
        Assert.Contains("expired", await (await client.GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Unauthorized), StringComparison.Ordinal);
        var list = await (await gym.Owner().GetAsync("/api/gym/api-keys")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.False(list.GetProperty("keys")[0].GetProperty("is_active").GetBoolean());
    }

    [Fact]
    public async Task Unknown_and_malformed_keys_get_401_and_a_bad_checksum_never_reaches_the_database()
    {
        var gym = await fx.CreateGymAsync();
        var real = await CreateKeyAsync(gym, "real", "read");
        var wellFormedUnknown = ApiKeyFormat.Generate();
        var badChecksum = real[..^1] + (real[^1] == '0' ? '1' : '0');

        var before = fx.ApiKeyQueries.Count;
        await (await fx.Client(badChecksum).GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        await (await fx.Client("cs_short").GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        Assert.Equal(before, fx.ApiKeyQueries.Count);

        await (await fx.Client(wellFormedUnknown).GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        Assert.True(fx.ApiKeyQueries.Count > before);
    }

    [Fact]
    public async Task Keys_can_never_manage_keys_whatever_their_scopes()
    {
        var gym = await fx.CreateGymAsync();
        var key = await CreateKeyAsync(gym, "rw", "read", "write");
        var keyId = (await (await gym.Owner().GetAsync("/api/gym/api-keys")).JsonAsync()).GetProperty("keys")[0].GetProperty("id").GetGuid();
        using var client = fx.Client(key);
        await (await client.GetAsync("/api/gym/api-keys")).AssertErrorAsync(HttpStatusCode.Forbidden);
        await (await client.PostJsonAsync("/api/gym/api-keys", new { name = "escalate", scopes = new[] { "read", "write" } })).AssertErrorAsync(HttpStatusCode.Forbidden);
        await (await client.DeleteAsync($"/api/gym/api-keys/{keyId}")).AssertErrorAsync(HttpStatusCode.Forbidden);
        Assert.Single((await (await gym.Owner().GetAsync("/api/gym/api-keys")).JsonAsync()).GetProperty("keys").EnumerateArray());
    }

    [Fact]
    public async Task A_key_of_gym_A_never_sees_gym_B_data()
    {
        var a = await fx.CreateGymAsync();
        var b = await fx.CreateGymAsync();
        var member = await (await b.Owner().PostJsonAsync("/api/gym/members", new { name = "Only B", user_id = "user_only_b" })).AssertStatusAsync(HttpStatusCode.Created);
        var keyA = await CreateKeyAsync(a, "a", "read", "write");
        using var client = fx.Client(keyA);
        await (await client.GetAsync($"/api/gym/members/{member.GetProperty("id").GetGuid()}")).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await client.DeleteAsync($"/api/gym/members/{member.GetProperty("id").GetGuid()}")).AssertErrorAsync(HttpStatusCode.NotFound);
        var list = await (await client.GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Empty(list.GetProperty("members").EnumerateArray());

        var keyB = (await (await b.Owner().PostJsonAsync("/api/gym/api-keys", new { })).JsonAsync()).GetProperty("id").GetGuid();
        await (await a.Owner().DeleteAsync($"/api/gym/api-keys/{keyB}")).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await a.Owner().DeleteAsync($"/api/gym/api-keys/{Guid.NewGuid()}")).AssertErrorAsync(HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData("""{"scopes":["admin"]}""", "scopes")]
    [InlineData("""{"scopes":[]}""", "scopes")]
    [InlineData("""{"scopes":"read"}""", "scopes")]
    [InlineData("""{"scopes":[null]}""", "scopes")]
    [InlineData("""{"name":""}""", "name")]
    [InlineData("""{"name":5}""", "name")]
    [InlineData("""{"expires_at":"2001-01-01T00:00:00Z"}""", "expires_at")]
    [InlineData("""{"expires_at":"tomorrow"}""", "expires_at")]
    public async Task Invalid_create_requests_are_400_and_create_nothing(string body, string field)
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        Assert.Contains(field, await (await owner.PostRawAsync("/api/gym/api-keys", body)).AssertErrorAsync(HttpStatusCode.BadRequest), StringComparison.Ordinal);
        Assert.Empty((await (await owner.GetAsync("/api/gym/api-keys")).JsonAsync()).GetProperty("keys").EnumerateArray());
    }

    [Fact]
    public async Task Last_used_is_recorded_at_most_once_a_minute()
    {
        var gym = await fx.CreateGymAsync();
        var key = await CreateKeyAsync(gym, "usage", "read");
        using var client = fx.Client(key);
        using var owner = gym.Owner();
        async Task<string?> LastUsed() => (await (await owner.GetAsync("/api/gym/api-keys")).JsonAsync()).GetProperty("keys")[0].GetProperty("last_used").GetString();

        var t0 = fx.Clock.GetUtcNow();
        await client.GetAsync("/api/gym/members");
        Assert.Equal("2026-04-16T12:00:00.000Z"[..10], (await LastUsed())![..10]);
        var first = await LastUsed();
        fx.Clock.Advance(TimeSpan.FromSeconds(30));
        await client.GetAsync("/api/gym/members");
        Assert.Equal(first, await LastUsed());
        fx.Clock.Advance(TimeSpan.FromSeconds(31));
        await client.GetAsync("/api/gym/members");
        Assert.NotEqual(first, await LastUsed());
        Assert.True(DateTimeOffset.Parse(await LastUsed() ?? "", System.Globalization.CultureInfo.InvariantCulture) > t0);
    }

    [Fact]
    public async Task The_command_line_creates_a_working_key_and_revokes_it()
    {
        var gym = await fx.CreateGymAsync();
        var (code, stdout, stderr) = await Cli.RunAsync(fx, "api-keys", "create", "--gym", gym.GymId.ToString(), "--name", "Script", "--scopes", "read,write");
        Assert.True(code == 0, stderr);
        var created = JsonDocument.Parse(stdout).RootElement;
        var key = created.GetProperty("key").GetString()!;
        Assert.Equal(["read", "write"], created.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()));
        await (await fx.Client(key).GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);

        var (revokeCode, _, revokeErr) = await Cli.RunAsync(fx, "api-keys", "revoke", "--gym", gym.GymId.ToString(), "--id", created.GetProperty("id").GetString()!);
        Assert.True(revokeCode == 0, revokeErr);
        if (fx.Store == Store.Postgres)
        {
            // The CLI's commit notifies the server, which evicts the key it had cached: no TTL to wait for.
            await Eventually.TrueAsync(async () => (await fx.Client(key).GetAsync("/api/gym/members")).StatusCode == HttpStatusCode.Unauthorized,
                TimeSpan.FromSeconds(10), "the server to hear of the CLI's revocation");
        }
        else
        {
            // SQLite has no channel between processes: the server's next revocation poll finds it.
            fx.Clock.Advance(fx.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ApiKeyOptions>>().Value.RevocationPollInterval);
            await Eventually.TrueAsync(async () => (await fx.Client(key).GetAsync("/api/gym/members")).StatusCode == HttpStatusCode.Unauthorized,
                TimeSpan.FromSeconds(10), "the server's poll to find the CLI's revocation");
        }
        await (await fx.Client(key).GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Unauthorized);

        var (badCode, _, badErr) = await Cli.RunAsync(fx, "api-keys", "create", "--gym", gym.GymId.ToString(), "--scopes", "admin");
        Assert.NotEqual(0, badCode);
        Assert.Contains("scopes", badErr, StringComparison.Ordinal);
    }

    private async Task<string> CreateKeyAsync(TestGym gym, string name, params string[] scopes)
    {
        var created = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name, scopes })).AssertStatusAsync(HttpStatusCode.Created);
        return created.GetProperty("key").GetString()!;
    }
}

/// <summary>A fixture that counts the SQL commands touching api_keys, to prove which rejections never query.</summary>
public abstract class ApiKeyFixture(Store store) : GymwireFixture(store)
{
    public System.Collections.Concurrent.ConcurrentQueue<string> ApiKeyQueries { get; } = new();

    protected override void ConfigureServices(IServiceCollection services) =>
        services.AddSingleton<IInterceptor>(new CommandRecorder(ApiKeyQueries));

    private sealed class CommandRecorder(System.Collections.Concurrent.ConcurrentQueue<string> queries) : DbCommandInterceptor
    {
        public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        {
            if (command.CommandText.Contains("api_keys", StringComparison.Ordinal))
            {
                queries.Enqueue(command.CommandText);
            }
            return ValueTask.FromResult(result);
        }
    }
}

public sealed class ApiKeySqlite() : ApiKeyFixture(Store.Sqlite);

public sealed class ApiKeyPostgres() : ApiKeyFixture(Store.Postgres);
