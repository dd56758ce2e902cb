using System.Net;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Memberships;

/// <summary>Membership plans through the owner API.</summary>
public abstract class PlanTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : PlanTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : PlanTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Plans_are_listed_by_name_ignoring_case_the_same_on_both_stores()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        foreach (var name in new[] { "basic", "Basic", "annual", "Zumba", "Annual" })
        {
            await (await owner.PostJsonAsync("/api/gym/plans", new { name, price_cents = 1000 })).AssertStatusAsync(HttpStatusCode.Created);
        }
        var listed = await (await owner.GetAsync("/api/gym/plans")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(["Annual", "annual", "Basic", "basic", "Zumba"], listed.GetProperty("plans").EnumerateArray().Select(p => p.GetProperty("name").GetString()));
    }
}
