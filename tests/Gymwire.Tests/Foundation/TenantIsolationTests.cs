using System.Net;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Foundation;

/// <summary>An owner sees and changes only their own gym: another gym's ids are 404, its rows never listed.</summary>
public abstract class TenantIsolationTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : TenantIsolationTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : TenantIsolationTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Gym_A_owner_gets_404_for_gym_B_records_and_never_lists_them()
    {
        var a = await fx.CreateGymAsync("A");
        var b = await fx.CreateGymAsync("B");
        using var ownerA = a.Owner();
        using var ownerB = b.Owner();
        var member = await (await ownerB.PostJsonAsync("/api/gym/members", new { name = "B member", user_id = "user_b" })).AssertStatusAsync(HttpStatusCode.Created);
        var memberId = member.GetProperty("id").GetGuid();
        var plan = (await (await ownerB.PostJsonAsync("/api/gym/plans", new { name = "B plan", price_cents = 100 })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid();
        var membership = (await (await ownerB.PostJsonAsync("/api/gym/memberships", new { user_id = "user_b", plan_id = plan })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid();
        var payment = (await (await ownerB.PostJsonAsync("/api/gym/payments", new { user_id = "user_b", amount_cents = 100 })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid();
        var cls = (await (await ownerB.PostJsonAsync("/api/gym/classes", new { title = "B class", discipline = "gi", day_of_week = 1, start_time = "07:00" })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid();

        await (await ownerA.GetAsync($"/api/gym/members/{memberId}")).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerA.PatchJsonAsync($"/api/gym/members/{memberId}", new { name = "hijacked" })).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerA.DeleteAsync($"/api/gym/members/{memberId}")).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerA.PostAsync($"/api/gym/memberships/{membership}/cancel", null)).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerA.PostAsync($"/api/gym/payments/{payment}/refund", null)).AssertErrorAsync(HttpStatusCode.NotFound);
        // Gym B's member, plan and class cannot be referenced from gym A either.
        await (await ownerA.PostJsonAsync("/api/gym/checkins", new { user_id = "user_b" })).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerA.PostJsonAsync("/api/gym/members", new { name = "A member", user_id = "user_a" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await ownerA.PostJsonAsync("/api/gym/memberships", new { user_id = "user_a", plan_id = plan })).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerA.PostJsonAsync("/api/gym/checkins", new { user_id = "user_a", class_schedule_id = cls })).AssertErrorAsync(HttpStatusCode.NotFound);

        foreach (var (url, key) in new[]
        {
            ("/api/gym/members", "members"), ("/api/gym/plans", "plans"), ("/api/gym/memberships", "memberships"), ("/api/gym/payments", "payments"),
            ("/api/gym/classes", "classes"), ("/api/gym/sessions", "sessions"), ("/api/gym/checkins", "checkins"), ("/api/gym/leads", "leads"),
            ("/api/gym/contracts", "contracts"), ("/api/gym/events", "events"),
        })
        {
            var list = await (await ownerA.GetAsync(url)).AssertStatusAsync(HttpStatusCode.OK);
            var text = list.GetProperty(key).GetRawText();
            Assert.DoesNotContain("user_b", text, StringComparison.Ordinal);
            Assert.DoesNotContain(b.GymId.ToString(), text, StringComparison.Ordinal);
        }
        var stillB = await (await ownerB.GetAsync($"/api/gym/members/{memberId}")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("B member", stillB.GetProperty("name").GetString());
    }

    [Fact]
    public async Task Same_user_id_may_exist_in_two_gyms()
    {
        var a = await fx.CreateGymAsync();
        var b = await fx.CreateGymAsync();
        await (await a.Owner().PostJsonAsync("/api/gym/members", new { name = "Same", user_id = "user_same" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await b.Owner().PostJsonAsync("/api/gym/members", new { name = "Same", user_id = "user_same" })).AssertStatusAsync(HttpStatusCode.Created);
    }
}
