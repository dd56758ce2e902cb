using System.Net;
using System.Text.Json;
using Gymwire.Features.Attendance;
using Gymwire.Features.Members;
using Gymwire.Features.Payments;
using Gymwire.Features.Training;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Zapier;

public abstract class ZapierTriggerTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : ZapierTriggerTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : ZapierTriggerTests(f), IClassFixture<PostgresGymwire>;

    private static readonly DateTime T0 = new(2026, 4, 1, 9, 0, 0, DateTimeKind.Utc);

    /// <summary>25 of each item; items 10 and 11 share a timestamp, to check the tie-break.</summary>
    private async Task<(TestGym Gym, string ReadKey)> SeedAsync()
    {
        var gym = await fx.CreateGymAsync();
        await fx.WithDbAsync(async db =>
        {
            for (var i = 0; i < 25; i++)
            {
                var at = T0.AddHours(i == 11 ? 10 : i);
                var userId = $"user_{i:D2}";
                db.Members.Add(new Member { Id = Guid.CreateVersion7(), GymId = gym.GymId, UserId = userId, Name = $"M{i}", Role = i % 5 == 0 ? "coach" : "member", JoinedAt = at });
                db.Payments.Add(new Payment { Id = Guid.CreateVersion7(), GymId = gym.GymId, UserId = userId, AmountCents = 1000 + i, Currency = "usd", Status = i == 3 ? "failed" : "paid", CreatedAt = at, RecordedAt = at });
                db.TrainingSessions.Add(new TrainingSession { Id = Guid.CreateVersion7(), GymId = gym.GymId, UserId = userId, SessionType = "no-gi", Date = DateOnly.FromDateTime(at), DurationMins = 60 + i, CreatedAt = at });
                db.Attendance.Add(new AttendanceRecord { Id = Guid.CreateVersion7(), GymId = gym.GymId, UserId = userId, Status = i == 24 ? "pending" : "approved", Source = "kiosk", CheckedInAt = at });
            }
            return await db.SaveChangesAsync();
        });
        var key = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "zap", scopes = new[] { "read" } })).AssertStatusAsync(HttpStatusCode.Created);
        return (gym, key.GetProperty("key").GetString()!);
    }

    private static void AssertNewestFirstWithStableTies(List<JsonElement> items, Func<JsonElement, string> timestamp)
    {
        Assert.Equal(20, items.Count);
        for (var i = 1; i < items.Count; i++)
        {
            var order = string.CompareOrdinal(timestamp(items[i - 1]), timestamp(items[i]));
            Assert.True(order > 0 || (order == 0 && items[i - 1].GetProperty("id").GetGuid().CompareTo(items[i].GetProperty("id").GetGuid()) > 0), $"item {i} out of order");
        }
    }

    [Fact]
    public async Task New_member_returns_the_20_newest_with_exactly_the_documented_fields()
    {
        var (_, key) = await SeedAsync();
        var response = await fx.Client(key).GetAsync("/api/zapier/triggers?type=new_member");
        var body = await response.AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(JsonValueKind.Array, body.ValueKind);
        var items = body.EnumerateArray().ToList();
        Assert.All(items, m => Assert.Equal(["id", "user_id", "role", "joined_at"], m.EnumerateObject().Select(p => p.Name)));
        Assert.All(items, m => Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", m.GetProperty("joined_at").GetString()));
        Assert.All(items, m => Assert.Contains(m.GetProperty("role").GetString(), new[] { "member", "coach" }));
        AssertNewestFirstWithStableTies(items, m => m.GetProperty("joined_at").GetString()!);
        Assert.Equal("user_24", items[0].GetProperty("user_id").GetString());
        // The two items at 19:00 (indexes 10 and 11) come in the same order on every poll.
        var again = (await (await fx.Client(key).GetAsync("/api/zapier/triggers?type=new_member")).JsonAsync()).EnumerateArray().Select(e => e.GetProperty("id").GetGuid());
        Assert.Equal(items.Select(e => e.GetProperty("id").GetGuid()), again);
    }

    [Fact]
    public async Task New_payment_new_session_and_new_checkin_have_their_documented_fields_and_types()
    {
        var (_, key) = await SeedAsync();
        using var client = fx.Client(key);

        var payments = (await (await client.GetAsync("/api/zapier/triggers?type=new_payment")).AssertStatusAsync(HttpStatusCode.OK)).EnumerateArray().ToList();
        Assert.All(payments, p => Assert.Equal(["id", "user_id", "amount_cents", "status", "created_at"], p.EnumerateObject().Select(x => x.Name)));
        Assert.All(payments, p => Assert.Equal(JsonValueKind.Number, p.GetProperty("amount_cents").ValueKind));
        AssertNewestFirstWithStableTies(payments, p => p.GetProperty("created_at").GetString()!);
        Assert.Equal(1024, payments[0].GetProperty("amount_cents").GetInt32());

        var sessions = (await (await client.GetAsync("/api/zapier/triggers?type=new_session")).AssertStatusAsync(HttpStatusCode.OK)).EnumerateArray().ToList();
        Assert.All(sessions, s => Assert.Equal(["id", "user_id", "session_type", "date", "duration_mins"], s.EnumerateObject().Select(x => x.Name)));
        Assert.All(sessions, s => Assert.Matches(@"^\d{4}-\d\d-\d\d$", s.GetProperty("date").GetString()));
        Assert.Equal(20, sessions.Count);
        Assert.Equal(84, sessions[0].GetProperty("duration_mins").GetInt32());

        var checkins = (await (await client.GetAsync("/api/zapier/triggers?type=new_checkin")).AssertStatusAsync(HttpStatusCode.OK)).EnumerateArray().ToList();
        Assert.All(checkins, c => Assert.Equal(["id", "user_id", "class_schedule_id", "status"], c.EnumerateObject().Select(x => x.Name)));
        Assert.All(checkins, c => Assert.Equal(JsonValueKind.Null, c.GetProperty("class_schedule_id").ValueKind));
        Assert.Equal(20, checkins.Count);
        Assert.Equal("pending", checkins[0].GetProperty("status").GetString());
        Assert.All(checkins.Concat(sessions).Concat(payments), x => Assert.True(Guid.TryParse(x.GetProperty("id").GetString(), out _)));
    }

    [Theory]
    [InlineData("/api/zapier/triggers")]
    [InlineData("/api/zapier/triggers?type=new_lead")]
    [InlineData("/api/zapier/triggers?type=NEW_MEMBER")]
    [InlineData("/api/zapier/triggers?type=new_member%27%20OR%201=1--")]
    public async Task Missing_or_unknown_type_is_400_naming_the_valid_types(string url)
    {
        var (_, key) = await SeedAsync();
        var message = await (await fx.Client(key).GetAsync(url)).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains("new_member, new_payment, new_session, new_checkin", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Triggers_need_the_read_scope_and_see_only_the_keys_gym()
    {
        var (gym, readKey) = await SeedAsync();
        var other = await fx.CreateGymAsync();
        var otherKey = (await (await other.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read" } })).JsonAsync()).GetProperty("key").GetString();
        var writeOnly = (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "write" } })).JsonAsync()).GetProperty("key").GetString();

        foreach (var type in new[] { "new_member", "new_payment", "new_session", "new_checkin" })
        {
            var empty = await (await fx.Client(otherKey).GetAsync($"/api/zapier/triggers?type={type}")).AssertStatusAsync(HttpStatusCode.OK);
            Assert.Empty(empty.EnumerateArray());
            await (await fx.Client(writeOnly).GetAsync($"/api/zapier/triggers?type={type}")).AssertErrorAsync(HttpStatusCode.Forbidden);
            await (await fx.Client().GetAsync($"/api/zapier/triggers?type={type}")).AssertErrorAsync(HttpStatusCode.Unauthorized);
            Assert.Equal(20, (await (await fx.Client(readKey).GetAsync($"/api/zapier/triggers?type={type}")).JsonAsync()).GetArrayLength());
        }
    }
}
