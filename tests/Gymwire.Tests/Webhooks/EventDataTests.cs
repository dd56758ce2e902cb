using System.Net;
using System.Text.Json;
using Gymwire.Features.Events;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// Every event's <c>data</c> names the records a receiver needs to fetch and act on (docs/webhooks.md, "Event data"):
/// the documented keys as the contract has them (docs/webhooks.md, "Event data"), then the ids (and the currency of amounts) Gymwire adds. The
/// catalog's samples carry the same keys as the real events.
/// </summary>
public abstract class EventDataTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : EventDataTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : EventDataTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Every_event_names_its_records_and_the_catalog_samples_have_the_same_keys()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        async Task<Guid> CreateAsync(string url, object body) =>
            (await (await owner.PostJsonAsync(url, body)).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid();

        var memberId = await CreateAsync("/api/gym/members", new { name = "Bo", user_id = "user_bo" });
        await (await owner.PatchJsonAsync($"/api/gym/members/{memberId}", new { email = "bo@example.com" })).AssertStatusAsync(HttpStatusCode.OK);
        var planId = await CreateAsync("/api/gym/plans", new { name = "Monthly", price_cents = 9900 });
        var membershipId = await CreateAsync("/api/gym/memberships", new { user_id = "user_bo", plan_id = planId });
        await (await owner.PostAsync($"/api/gym/memberships/{membershipId}/cancel", null)).AssertStatusAsync(HttpStatusCode.OK);
        var paidId = await CreateAsync("/api/gym/payments", new { user_id = "user_bo", amount_cents = 9900, plan_id = planId, currency = "eur" });
        var failedId = await CreateAsync("/api/gym/payments", new { user_id = "user_bo", amount_cents = 500, status = "failed", failure_reason = "card_declined" });
        await (await owner.PostAsync($"/api/gym/payments/{paidId}/refund", null)).AssertStatusAsync(HttpStatusCode.OK);
        var sessionId = await CreateAsync("/api/gym/sessions", new { user_id = "user_bo", session_type = "no-gi", date = "2026-04-16", duration_mins = 90 });
        var classId = await CreateAsync("/api/gym/classes", new { title = "Advanced No-Gi", discipline = "no-gi", day_of_week = 2, start_time = "18:00" });
        var checkinId = await CreateAsync("/api/gym/checkins", new { user_id = "user_bo", class_schedule_id = classId });
        var leadId = await CreateAsync("/api/gym/leads", new { first_name = "John", last_name = "Doe", source = "zapier" });
        var contractId = await CreateAsync("/api/gym/contracts", new { user_id = "user_bo", title = "Agreement" });
        await (await owner.DeleteAsync($"/api/gym/members/{memberId}")).AssertStatusAsync(HttpStatusCode.OK);

        var events = (await (await owner.GetAsync("/api/gym/events?limit=200")).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("events").EnumerateArray()
            .ToDictionary(e => e.GetProperty("event").GetString()!, e => e.GetProperty("data"));
        Assert.Equal(EventCatalog.Canonical.Select(e => e.Name).Order(), events.Keys.Order());

        // The catalog's sample shows exactly the keys a real event has, documented ones first, in the same order.
        foreach (var (name, data) in events)
        {
            Assert.Equal(EventCatalog.ByName[name].SampleData.Keys, data.EnumerateObject().Select(p => p.Name));
        }

        void Ids(string name, params (string Key, object Expected)[] expected)
        {
            foreach (var (key, value) in expected)
            {
                var actual = events[name].GetProperty(key);
                Assert.True(value.ToString() == (actual.ValueKind == JsonValueKind.String ? actual.GetString() : actual.GetRawText()), $"{name}.{key}: {actual}");
            }
        }
        Ids("member.joined", ("user_id", "user_bo"), ("member_id", memberId));
        Ids("member.updated", ("user_id", "user_bo"), ("member_id", memberId));
        Ids("member.left", ("user_id", "user_bo"), ("member_id", memberId));
        Ids("membership.activated", ("user_id", "user_bo"), ("membership_id", membershipId), ("plan_id", planId));
        Ids("membership.canceled", ("user_id", "user_bo"), ("membership_id", membershipId), ("plan_id", planId));
        Ids("payment.received", ("user_id", "user_bo"), ("payment_id", paidId), ("plan_id", planId), ("amount_cents", 9900), ("currency", "eur"));
        Ids("payment.failed", ("user_id", "user_bo"), ("payment_id", failedId), ("amount_cents", 500), ("currency", "usd"));
        Ids("payment.refunded", ("user_id", "user_bo"), ("payment_id", paidId), ("amount_cents", 9900), ("currency", "eur"));
        Ids("session.logged", ("user_id", "user_bo"), ("session_id", sessionId));
        Ids("attendance.checked_in", ("user_id", "user_bo"), ("attendance_id", checkinId), ("class_schedule_id", classId), ("source", "kiosk"));
        Ids("class.scheduled", ("schedule_id", classId));
        Ids("lead.created", ("lead_id", leadId));
        Ids("contract.signed", ("user_id", "user_bo"), ("contract_id", contractId));

        // user_id, which every member-related event carries, finds the member's record (even after it left).
        var byUserId = await (await owner.GetAsync("/api/gym/members?user_id=user_bo")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(memberId, Assert.Single(byUserId.GetProperty("members").EnumerateArray()).GetProperty("id").GetGuid());
        await (await owner.GetAsync($"/api/gym/members/{memberId}")).AssertStatusAsync(HttpStatusCode.OK);
    }
}
