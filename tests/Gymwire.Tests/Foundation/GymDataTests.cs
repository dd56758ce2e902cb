using System.Net;
using System.Text.Json;
using Gymwire.Features.Events;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Foundation;

/// <summary>Each owner operation changes gym data and writes its catalog event in the same transaction.</summary>
public abstract class GymDataTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : GymDataTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : GymDataTests(f), IClassFixture<PostgresGymwire>;

    private async Task<List<OutboxEvent>> EventsAsync(Guid gymId) =>
        await fx.WithDbAsync(db => db.OutboxEvents.AsNoTracking().Where(e => e.GymId == gymId).OrderBy(e => e.Sequence).ToListAsync());

    private static JsonElement Data(OutboxEvent e) => JsonDocument.Parse(e.Data).RootElement;

    [Fact]
    public async Task Every_operation_writes_its_documented_event()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Bo", user_id = "user_bo" })).AssertStatusAsync(HttpStatusCode.Created);
        var plan = await (await owner.PostJsonAsync("/api/gym/plans", new { name = "Monthly", price_cents = 9900 })).AssertStatusAsync(HttpStatusCode.Created);
        var planId = plan.GetProperty("id").GetGuid();
        var membership = await (await owner.PostJsonAsync("/api/gym/memberships", new { user_id = "user_bo", plan_id = planId })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostAsync($"/api/gym/memberships/{membership.GetProperty("id").GetGuid()}/cancel", null)).AssertStatusAsync(HttpStatusCode.OK);
        await (await owner.PostAsync($"/api/gym/memberships/{membership.GetProperty("id").GetGuid()}/cancel", null)).AssertErrorAsync(HttpStatusCode.Conflict);
        var paid = await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_bo", amount_cents = 9900, plan_id = planId })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_bo", amount_cents = 9900, status = "failed", failure_reason = "card_declined" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostAsync($"/api/gym/payments/{paid.GetProperty("id").GetGuid()}/refund", null)).AssertStatusAsync(HttpStatusCode.OK);
        await (await owner.PostAsync($"/api/gym/payments/{paid.GetProperty("id").GetGuid()}/refund", null)).AssertErrorAsync(HttpStatusCode.Conflict);
        var session = await (await owner.PostJsonAsync("/api/gym/sessions", new { user_id = "user_bo", session_type = "no-gi", date = "2026-04-16", duration_mins = 90 })).AssertStatusAsync(HttpStatusCode.Created);
        var cls = await (await owner.PostJsonAsync("/api/gym/classes", new { title = "Advanced No-Gi", discipline = "no-gi", day_of_week = 2, start_time = "18:00" })).AssertStatusAsync(HttpStatusCode.Created);
        var checkin = await (await owner.PostJsonAsync("/api/gym/checkins", new { user_id = "user_bo", class_schedule_id = cls.GetProperty("id").GetGuid() })).AssertStatusAsync(HttpStatusCode.Created);
        var lead = await (await owner.PostJsonAsync("/api/gym/leads", new { first_name = "John", last_name = "Doe", source = "website" })).AssertStatusAsync(HttpStatusCode.Created);
        var contract = await (await owner.PostJsonAsync("/api/gym/contracts", new { user_id = "user_bo", title = "Agreement" })).AssertStatusAsync(HttpStatusCode.Created);

        var events = await EventsAsync(gym.GymId);
        Assert.Equal(
            ["member.joined", "membership.activated", "membership.canceled", "payment.received", "payment.failed", "payment.refunded",
             "session.logged", "class.scheduled", "attendance.checked_in", "lead.created", "contract.signed"],
            events.Select(e => e.Type));
        var byType = events.ToDictionary(e => e.Type, Data);
        Assert.Equal(9900, byType["payment.received"].GetProperty("amount_cents").GetInt32());
        Assert.Equal(planId.ToString(), byType["payment.received"].GetProperty("plan_id").GetString());
        Assert.Equal("card_declined", byType["payment.failed"].GetProperty("failure_reason").GetString());
        Assert.Equal(session.GetProperty("id").GetString(), byType["session.logged"].GetProperty("session_id").GetString());
        Assert.Equal("2026-04-16", byType["session.logged"].GetProperty("date").GetString());
        Assert.Equal(90, byType["session.logged"].GetProperty("duration_mins").GetInt32());
        Assert.Equal("18:00", byType["class.scheduled"].GetProperty("start_time").GetString());
        Assert.Equal(2, byType["class.scheduled"].GetProperty("day_of_week").GetInt32());
        Assert.Equal(checkin.GetProperty("id").GetString(), byType["attendance.checked_in"].GetProperty("attendance_id").GetString());
        Assert.Equal("approved", byType["attendance.checked_in"].GetProperty("status").GetString());
        Assert.Equal(lead.GetProperty("id").GetString(), byType["lead.created"].GetProperty("lead_id").GetString());
        Assert.Equal("website", byType["lead.created"].GetProperty("source").GetString());
        Assert.Equal(contract.GetProperty("id").GetString(), byType["contract.signed"].GetProperty("contract_id").GetString());

        var feed = await (await owner.GetAsync($"/api/gym/events?after_sequence={events[0].Sequence}&limit=3")).AssertStatusAsync(HttpStatusCode.OK);
        var page = feed.GetProperty("events").EnumerateArray().ToList();
        Assert.Equal(["membership.activated", "membership.canceled", "payment.received"], page.Select(e => e.GetProperty("event").GetString()));
        Assert.Equal(gym.GymId, page[0].GetProperty("gym_id").GetGuid());
    }

    [Fact]
    public async Task References_to_unknown_members_plans_or_classes_are_404_and_write_nothing()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        await (await owner.PostJsonAsync("/api/gym/sessions", new { user_id = "user_ghost", session_type = "gi", date = "2026-04-16", duration_mins = 60 })).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await owner.PostJsonAsync("/api/gym/checkins", new { user_id = "user_ghost" })).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await owner.PostJsonAsync("/api/gym/memberships", new { user_id = "user_ghost", plan_id = Guid.NewGuid() })).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Cy", user_id = "user_cy" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/checkins", new { user_id = "user_cy", class_schedule_id = Guid.NewGuid() })).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_cy", amount_cents = 100, plan_id = Guid.NewGuid() })).AssertErrorAsync(HttpStatusCode.NotFound);
        Assert.Single(await EventsAsync(gym.GymId));
    }

    [Theory]
    [InlineData("/api/gym/classes", """{"title":"X","discipline":"gi","day_of_week":7,"start_time":"18:00"}""", "day_of_week")]
    [InlineData("/api/gym/classes", """{"title":"X","discipline":"gi","day_of_week":1,"start_time":"6pm"}""", "start_time")]
    [InlineData("/api/gym/sessions", """{"user_id":"u","session_type":"gi","date":"16/04/2026","duration_mins":60}""", "date")]
    [InlineData("/api/gym/sessions", """{"user_id":"u","session_type":"gi","date":"2026-04-16","duration_mins":0}""", "duration_mins")]
    [InlineData("/api/gym/payments", """{"user_id":"u","amount_cents":"100"}""", "amount_cents")]
    [InlineData("/api/gym/payments", """{"user_id":"u","amount_cents":100,"status":"refunded"}""", "status")]
    [InlineData("/api/gym/plans", """{"name":"P","price_cents":100,"interval":"weekly"}""", "interval")]
    [InlineData("/api/gym/leads", """{"last_name":"Doe"}""", "first_name")]
    [InlineData("/api/gym/contracts", """{"user_id":"u"}""", "title")]
    public async Task Invalid_fields_are_400_naming_the_field(string url, string body, string field)
    {
        var gym = await fx.CreateGymAsync();
        var message = await (await gym.Owner().PostRawAsync(url, body)).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains(field, message, StringComparison.Ordinal);
        Assert.Empty(await EventsAsync(gym.GymId));
    }

    [Fact]
    public async Task A_failed_write_leaves_neither_the_change_nor_its_event()
    {
        var gym = await fx.CreateGymAsync();
        // A member of a gym that does not exist violates the foreign key: the whole SaveChanges fails.
        await fx.WithDbAsync(async db =>
        {
            var now = fx.Clock.GetUtcNow().UtcDateTime;
            db.Members.Add(new Gymwire.Features.Members.Member { Id = Guid.NewGuid(), GymId = Guid.NewGuid(), UserId = "user_x", Name = "X", Role = "member", JoinedAt = now });
            db.AddEvent(gym.GymId, EventCatalog.MemberJoined, new { user_id = "user_x" }, now);
            await Assert.ThrowsAsync<DbUpdateException>(() => db.SaveChangesAsync());
            return 0;
        });
        // An explicit transaction rolled back after SaveChanges.
        await fx.WithDbAsync(async db =>
        {
            var now = fx.Clock.GetUtcNow().UtcDateTime;
            await using var tx = await db.Database.BeginTransactionAsync();
            db.Members.Add(new Gymwire.Features.Members.Member { Id = Guid.NewGuid(), GymId = gym.GymId, UserId = "user_y", Name = "Y", Role = "member", JoinedAt = now });
            db.AddEvent(gym.GymId, EventCatalog.MemberJoined, new { user_id = "user_y" }, now);
            await db.SaveChangesAsync();
            await tx.RollbackAsync();
            return 0;
        });
        Assert.Equal(0, await fx.WithDbAsync(db => db.Members.CountAsync(m => m.GymId == gym.GymId)));
        Assert.Empty(await EventsAsync(gym.GymId));
    }

    [Fact]
    public async Task Data_survives_a_restart_on_the_same_database()
    {
        var gym = await fx.CreateGymAsync();
        await (await gym.Owner().PostJsonAsync("/api/gym/members", new { name = "Persisted", user_id = "user_keep" })).AssertStatusAsync(HttpStatusCode.Created);
        await fx.RestartAsync();
        var list = await (await gym.Owner().GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("user_keep", list.GetProperty("members")[0].GetProperty("user_id").GetString());
    }
}
