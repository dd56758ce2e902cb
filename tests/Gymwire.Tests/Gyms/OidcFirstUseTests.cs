using System.Net;
using System.Text.Json;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Gyms;

/// <summary>
/// Concurrent first uses of a provider identity race to link it to the owner; the losers must go on as the owner, not
/// leave their failed link tracked for the request's next save to replay (a 500).
/// </summary>
public abstract class OidcFirstUseTests(OidcGymwire fx)
{
    public sealed class Sqlite(SqliteOidcGymwire f) : OidcFirstUseTests(f), IClassFixture<SqliteOidcGymwire>;
    public sealed class Postgres(PostgresOidcGymwire f) : OidcFirstUseTests(f), IClassFixture<PostgresOidcGymwire>;

    [Fact]
    public async Task Parallel_first_uses_of_a_new_provider_identity_all_succeed()
    {
        var gym = await fx.CreateGymAsync();
        var (token, _) = await OidcProvider.Instance.SignInAsync(gym.OwnerEmail);
        const int requests = 8;
        // Every request looks the link up (not there) and AddLoginAsync looks again (still not there) before any saves it.
        fx.ReadBarrier.Arm("owner_logins", Subject(token), requests, rounds: 2);
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
