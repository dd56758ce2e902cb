using System.Data.Common;
using System.Net;
using System.Text.Json;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Tests.Dashboard;

/// <summary>
/// Concurrent first uses of a provider identity race to link it to the owner; the losers must go on as the owner, not
/// leave their failed link tracked for the request's next save to replay (a 500).
/// </summary>
public abstract class OidcFirstUseTests(OidcFirstUseGymwire fx)
{
    public sealed class Sqlite(SqliteOidcFirstUse f) : OidcFirstUseTests(f), IClassFixture<SqliteOidcFirstUse>;
    public sealed class Postgres(PostgresOidcFirstUse f) : OidcFirstUseTests(f), IClassFixture<PostgresOidcFirstUse>;

    [Fact]
    public async Task Parallel_first_uses_of_a_new_provider_identity_all_succeed()
    {
        var gym = await fx.CreateGymAsync();
        var (token, _) = await OidcProvider.Instance.SignInAsync(gym.OwnerEmail);
        const int requests = 8;
        // Every request looks the link up (not there) and AddLoginAsync looks again (still not there) before any saves it.
        fx.LinkReads.Arm(Subject(token), requests, rounds: 2);
        var results = await Task.WhenAll(Enumerable.Range(0, requests).Select(async i =>
        {
            using var api = fx.Client(token);
            var response = await api.PostJsonAsync("/api/gym/api-keys", new { name = $"Key {i}" });
            return $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
        }));
        Assert.All(results, r => Assert.StartsWith("201 ", r, StringComparison.Ordinal));
        Assert.Equal(1, await fx.WithDbAsync(db => db.UserLogins.CountAsync(l => db.Users.Any(u => u.Id == l.UserId && u.GymId == gym.GymId))));
        using var owner = gym.Owner();
        var keys = await (await owner.GetAsync("/api/gym/api-keys")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(requests, keys.GetProperty("keys").GetArrayLength());
    }

    private static string Subject(string jwt)
    {
        var payload = jwt.Split('.')[1].Replace('-', '+').Replace('_', '/');
        payload = payload.PadRight(payload.Length + ((4 - payload.Length % 4) % 4), '=');
        using var json = JsonDocument.Parse(Convert.FromBase64String(payload));
        return json.RootElement.GetProperty("sub").GetString()!;
    }
}

public abstract class OidcFirstUseGymwire(Store store) : OidcGymwire(store)
{
    public LinkReadRounds LinkReads { get; } = new();

    protected override void ConfigureServices(IServiceCollection services) => services.AddSingleton<IInterceptor>(LinkReads);
}

public sealed class SqliteOidcFirstUse() : OidcFirstUseGymwire(Store.Sqlite);

public sealed class PostgresOidcFirstUse() : OidcFirstUseGymwire(Store.Postgres);

/// <summary>
/// Once armed, holds each read of <c>owner_logins</c> for one provider subject until <c>readers</c> of them have run, for
/// <c>rounds</c> rounds: every request then finds no link, twice, before any of them stores one.
/// </summary>
public sealed class LinkReadRounds : DbCommandInterceptor
{
    private readonly Lock _lock = new();
    private string? _subject;
    private int _readers;
    private int _rounds;
    private int _arrived;
    private TaskCompletionSource _round = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Arm(string subject, int readers, int rounds)
    {
        lock (_lock)
        {
            _subject = subject;
            _readers = readers;
            _rounds = rounds;
            _arrived = 0;
            _round = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    // After the command ran, so each reader has its (empty) answer before any request goes on to write.
    public override async ValueTask<DbDataReader> ReaderExecutedAsync(
        DbCommand command, CommandExecutedEventData eventData, DbDataReader result, CancellationToken cancellationToken = default)
    {
        Task? wait = null;
        lock (_lock)
        {
            if (_rounds > 0 && command.CommandText.Contains("owner_logins", StringComparison.Ordinal)
                && command.Parameters.Cast<DbParameter>().Any(p => Equals(p.Value, _subject)))
            {
                wait = _round.Task;
                if (++_arrived == _readers)
                {
                    _round.TrySetResult();
                    _arrived = 0;
                    _rounds--;
                    _round = new(TaskCreationOptions.RunContinuationsAsynchronously);
                }
            }
        }
        if (wait is not null)
        {
            // Bounded, so code that reads fewer times fails its test instead of hanging it.
            await wait.WaitAsync(TimeSpan.FromSeconds(20), cancellationToken);
        }
        return result;
    }
}
