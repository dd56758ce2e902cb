using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gymwire.Tests.Foundation;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Demo;

/// <summary><c>gymwire demo</c>: a demo gym with data in every list and integrations that look used.</summary>
public abstract class DemoTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : DemoTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : DemoTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Demo_is_idempotent_and_its_owner_lists_at_least_50_members()
    {
        // The fixture's database holds other tests' gyms (a database of its own needs no option: DemoTests).
        var (code, stdout, stderr) = await Cli.RunAsync(fx, "demo", "--alongside-other-gyms");
        Assert.True(code == 0, stderr);
        var first = JsonDocument.Parse(stdout).RootElement;
        var (again, stdout2, _) = await Cli.RunAsync(fx, "demo", "--alongside-other-gyms");
        Assert.Equal(0, again);
        var second = JsonDocument.Parse(stdout2).RootElement;
        Assert.Equal(first.GetProperty("gym_id").GetGuid(), second.GetProperty("gym_id").GetGuid());
        Assert.False(second.GetProperty("created").GetBoolean());

        var login = first.GetProperty("login");
        var session = await (await fx.Client().PostAsJsonAsync("/api/auth/login",
            new { email = login.GetProperty("email").GetString(), password = login.GetProperty("password").GetString() })).AssertStatusAsync(HttpStatusCode.OK);
        using var owner = fx.Client(session.GetProperty("token").GetString());
        var members = await (await owner.GetAsync("/api/gym/members?limit=200")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.True(members.GetProperty("members").GetArrayLength() >= 50);
        Assert.Contains(members.GetProperty("members").EnumerateArray(), m => m.GetProperty("role").GetString() == "coach");
        foreach (var (url, key) in new[] { ("/api/gym/payments", "payments"), ("/api/gym/sessions", "sessions"), ("/api/gym/checkins", "checkins"),
                     ("/api/gym/classes", "classes"), ("/api/gym/leads", "leads"), ("/api/gym/contracts", "contracts"), ("/api/gym/plans", "plans"), ("/api/gym/memberships", "memberships") })
        {
            var list = await (await owner.GetAsync(url)).AssertStatusAsync(HttpStatusCode.OK);
            Assert.True(list.GetProperty(key).GetArrayLength() > 0, url);
        }

        // Integrations that look used: a webhook with delivered, retried and failed deliveries, and a key used recently.
        var hook = Assert.Single((await (await owner.GetAsync("/api/gym/webhooks")).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("webhooks").EnumerateArray());
        Assert.True(hook.GetProperty("is_active").GetBoolean());
        var deliveries = (await (await owner.GetAsync($"/api/gym/webhooks/{hook.GetProperty("id").GetGuid()}/deliveries?limit=100")).AssertStatusAsync(HttpStatusCode.OK))
            .GetProperty("deliveries").EnumerateArray().Select(d => (Status: d.GetProperty("status").GetString(), Attempts: d.GetProperty("attempt_count").GetInt32())).ToList();
        Assert.Contains(deliveries, d => d is ("delivered", 1));
        Assert.Contains(deliveries, d => d is ("delivered", 2));
        Assert.Contains(deliveries, d => d is ("undeliverable", 4));
        Assert.DoesNotContain(deliveries, d => d.Status is "pending" or "retrying");
        var keys = (await (await owner.GetAsync("/api/gym/api-keys")).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("keys").EnumerateArray().ToList();
        Assert.Contains(keys, k => k.GetProperty("last_used").ValueKind == JsonValueKind.String);
    }
}
