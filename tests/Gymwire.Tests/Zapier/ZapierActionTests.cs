using System.Net;
using System.Text.Json;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Zapier;

public abstract class ZapierActionTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : ZapierActionTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : ZapierActionTests(f), IClassFixture<PostgresGymwire>;

    private async Task<(TestGym Gym, HttpClient Writer)> GymWithWriteKeyAsync()
    {
        var gym = await fx.CreateGymAsync();
        var key = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "Zapier", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        return (gym, fx.Client(key.GetProperty("key").GetString()));
    }

    private Task<List<string>> EventTypesAsync(Guid gymId) =>
        fx.WithDbAsync(db => db.OutboxEvents.Where(e => e.GymId == gymId).OrderBy(e => e.Sequence).Select(e => e.Type).ToListAsync());

    [Fact]
    public async Task Create_lead_creates_the_lead_emits_lead_created_and_defaults_source_to_zapier()
    {
        var (gym, client) = await GymWithWriteKeyAsync();
        var lead = await (await client.PostJsonAsync("/api/zapier/actions?type=create_lead",
            new { first_name = "John", last_name = "Doe", email = "john@example.com", phone = "+15551234567", favourite_colour = "ignored" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("John", lead.GetProperty("first_name").GetString());
        Assert.Equal("Doe", lead.GetProperty("last_name").GetString());
        Assert.Equal("john@example.com", lead.GetProperty("email").GetString());
        Assert.Equal("zapier", lead.GetProperty("source").GetString());
        Assert.True(Guid.TryParse(lead.GetProperty("id").GetString(), out _));

        var withSource = await (await client.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Jane", source = "website" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("website", withSource.GetProperty("source").GetString());

        Assert.Equal(["lead.created", "lead.created"], await EventTypesAsync(gym.GymId));
        var data = await fx.WithDbAsync(db => db.OutboxEvents.Where(e => e.GymId == gym.GymId).OrderBy(e => e.Sequence).Select(e => e.Data).FirstAsync());
        var payload = JsonDocument.Parse(data).RootElement;
        Assert.Equal(lead.GetProperty("id").GetString(), payload.GetProperty("lead_id").GetString());
        Assert.Equal(["lead_id", "first_name", "last_name", "source"], payload.EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public async Task Create_lead_takes_a_phone_as_people_write_it_and_blank_optional_fields_as_not_given()
    {
        var (gym, client) = await GymWithWriteKeyAsync();
        // The contract types a lead's phone as any "Phone number" (only send_sms asks for E.164), and form tools and
        // Zapier's mappers send "" for a field left empty.
        var lead = await (await client.PostJsonAsync("/api/zapier/actions?type=create_lead",
            new { first_name = "Jane", last_name = "", email = "", phone = " (555) 123-4567 ", source = "" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("(555) 123-4567", lead.GetProperty("phone").GetString());
        Assert.Equal("zapier", lead.GetProperty("source").GetString());
        Assert.Equal(JsonValueKind.Null, lead.GetProperty("last_name").ValueKind);
        Assert.Equal(JsonValueKind.Null, lead.GetProperty("email").ValueKind);

        foreach (var phone in new[] { "+1 555.123.4567", "555-123-4567", "+15551234567", "020 7946 0958" })
        {
            var created = await (await client.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Jane", phone })).AssertStatusAsync(HttpStatusCode.Created);
            Assert.Equal(phone, created.GetProperty("phone").GetString());
        }
        var manual = await (await gym.Owner().PostJsonAsync("/api/gym/leads", new { first_name = "Jo", phone = "555 123 4567", source = " " })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("manual", manual.GetProperty("source").GetString());
        Assert.Equal(6, await fx.WithDbAsync(db => db.Leads.CountAsync(l => l.GymId == gym.GymId)));
    }

    [Theory]
    [InlineData("create_lead", """{"last_name":"Doe"}""", "'first_name' is required")]
    [InlineData("create_lead", """{"first_name":""}""", "'first_name' is required")]
    [InlineData("create_lead", """{"first_name":42}""", "'first_name' has the wrong type")]
    [InlineData("create_lead", """{"first_name":"J","email":"not-an-email"}""", "'email'")]
    [InlineData("create_lead", """{"first_name":"J","phone":"call me"}""", "'phone'")]
    [InlineData("create_lead", """{"first_name":"J","phone":"555-123"}""", "7 to 15 digits")]
    [InlineData("create_lead", """{"first_name":"J","phone":"555+1234567"}""", "'phone'")]
    [InlineData("create_lead", """{"first_name":"J","phone":"+1 (555) 123-4567 0000000"}""", "'phone'")]
    [InlineData("send_sms", """{"message":"hi"}""", "'phone' is required")]
    [InlineData("send_sms", """{"phone":"+15551234567"}""", "'message' is required")]
    [InlineData("send_sms", """{"phone":"+15551234567","message":""}""", "'message' is required")]
    [InlineData("send_sms", """{"phone":"+15551234567","message":"  \n "}""", "'message' is required")]
    [InlineData("send_sms", """{"phone":"555-123","message":"hi"}""", "E.164")]
    [InlineData("send_sms", """{"phone":"+1555123456789012","message":"hi"}""", "E.164")]
    [InlineData("send_sms", """{"phone":["+15551234567"],"message":"hi"}""", "'phone' has the wrong type")]
    [InlineData("log_attendance", """{}""", "'user_id' is required")]
    [InlineData("log_attendance", """{"user_id":7}""", "'user_id' has the wrong type")]
    [InlineData("create_lead", """not json""", "Malformed JSON")]
    [InlineData("create_lead", "", "JSON request body is required")]
    [InlineData("create_lead", "[]", "must be an object")]
    public async Task Invalid_action_bodies_are_400_naming_the_field_and_change_nothing(string type, string body, string expected)
    {
        var (gym, client) = await GymWithWriteKeyAsync();
        var message = await (await client.PostRawAsync($"/api/zapier/actions?type={type}", body)).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains(expected, message, StringComparison.Ordinal);
        Assert.Empty(await EventTypesAsync(gym.GymId));
        Assert.Equal(0, await fx.WithDbAsync(db => db.SmsMessages.CountAsync(m => m.GymId == gym.GymId)));
        Assert.Equal(0, await fx.WithDbAsync(db => db.Leads.CountAsync(m => m.GymId == gym.GymId)));
    }

    [Fact]
    public async Task Sms_to_a_phone_written_with_spaces_around_it_is_queued_to_the_trimmed_number_as_create_lead_takes_it()
    {
        var (gym, client) = await GymWithWriteKeyAsync();
        var sms = await (await client.PostJsonAsync("/api/zapier/actions?type=send_sms", new { phone = " +15551234567 ", message = "hi" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("+15551234567", sms.GetProperty("phone").GetString());
        Assert.Equal("+15551234567", await fx.WithDbAsync(db => db.SmsMessages.Where(m => m.GymId == gym.GymId).Select(m => m.Phone).SingleAsync()));
    }

    [Fact]
    public async Task Sms_of_1600_characters_is_queued_and_1601_is_refused()
    {
        var (gym, client) = await GymWithWriteKeyAsync();
        var sms = await (await client.PostJsonAsync("/api/zapier/actions?type=send_sms", new { phone = "+15551234567", message = new string('x', 1600) })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("queued", sms.GetProperty("status").GetString());
        Assert.Equal("+15551234567", sms.GetProperty("phone").GetString());
        var tooLong = await (await client.PostJsonAsync("/api/zapier/actions?type=send_sms", new { phone = "+15551234567", message = new string('x', 1601) })).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains("1600", tooLong, StringComparison.Ordinal);

        // With no SMS provider configured the message stays visible as queued, never dropped.
        var queue = await (await gym.Owner().GetAsync("/api/gym/sms?status=queued")).AssertStatusAsync(HttpStatusCode.OK);
        var queued = Assert.Single(queue.GetProperty("messages").EnumerateArray());
        Assert.Equal(sms.GetProperty("id").GetString(), queued.GetProperty("id").GetString());
    }

    [Fact]
    public async Task Log_attendance_checks_in_a_member_of_the_keys_gym_only()
    {
        var (gym, client) = await GymWithWriteKeyAsync();
        var other = await fx.CreateGymAsync();
        await (await other.Owner().PostJsonAsync("/api/gym/members", new { name = "Other", user_id = "user_other" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await gym.Owner().PostJsonAsync("/api/gym/members", new { name = "Mine", user_id = "user_abc123" })).AssertStatusAsync(HttpStatusCode.Created);

        var checkin = await (await client.PostJsonAsync("/api/zapier/actions?type=log_attendance", new { user_id = "user_abc123" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("user_abc123", checkin.GetProperty("user_id").GetString());
        Assert.Equal("approved", checkin.GetProperty("status").GetString());
        await (await client.PostJsonAsync("/api/zapier/actions?type=log_attendance", new { user_id = "user_other" })).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await client.PostJsonAsync("/api/zapier/actions?type=log_attendance", new { user_id = "user_nobody" })).AssertErrorAsync(HttpStatusCode.NotFound);

        Assert.Equal(["member.joined", "attendance.checked_in"], await EventTypesAsync(gym.GymId));
        Assert.Equal(["member.joined"], await EventTypesAsync(other.GymId));
        // new_checkin holds kiosk check-ins (the contract's words, docs/polling.md); an API check-in is in the gym's list and the event feed.
        var trigger = await (await client.GetAsync("/api/zapier/triggers?type=new_checkin")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Empty(trigger.EnumerateArray());
        var listed = await (await gym.Owner().GetAsync("/api/gym/checkins")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(checkin.GetProperty("id").GetString(), Assert.Single(listed.GetProperty("checkins").EnumerateArray()).GetProperty("id").GetString());
    }

    [Fact]
    public async Task Actions_need_the_write_scope_a_known_type_and_json()
    {
        var (gym, _) = await GymWithWriteKeyAsync();
        var readOnly = (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read" } })).JsonAsync()).GetProperty("key").GetString();
        Assert.Contains("'write'", await (await fx.Client(readOnly).PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "X" })).AssertErrorAsync(HttpStatusCode.Forbidden), StringComparison.Ordinal);
        using var owner = gym.Owner();
        Assert.Contains("create_lead, send_sms, log_attendance", await (await owner.PostJsonAsync("/api/zapier/actions?type=delete_gym", new { })).AssertErrorAsync(HttpStatusCode.BadRequest), StringComparison.Ordinal);
        Assert.Contains("create_lead, send_sms, log_attendance", await (await owner.PostJsonAsync("/api/zapier/actions", new { })).AssertErrorAsync(HttpStatusCode.BadRequest), StringComparison.Ordinal);
        await (await owner.PostRawAsync("/api/zapier/actions?type=create_lead", "first_name=X", "application/x-www-form-urlencoded")).AssertErrorAsync(HttpStatusCode.UnsupportedMediaType);
        Assert.Empty(await EventTypesAsync(gym.GymId));
    }

    [Fact]
    public async Task A_retried_action_with_the_same_idempotency_key_returns_the_first_result_and_creates_nothing_new()
    {
        var (gym, client) = await GymWithWriteKeyAsync();
        HttpRequestMessage Request(string key, object body)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/api/zapier/actions?type=create_lead") { Content = System.Net.Http.Json.JsonContent.Create(body) };
            request.Headers.Add("Idempotency-Key", key);
            return request;
        }
        var first = await client.SendAsync(Request("zap-1", new { first_name = "Once" }));
        var firstBody = await first.AssertStatusAsync(HttpStatusCode.Created);
        var retry = await client.SendAsync(Request("zap-1", new { first_name = "Once" }));
        var retryBody = await retry.AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal(firstBody.GetRawText(), retryBody.GetRawText());
        Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());

        await (await client.SendAsync(Request("zap-1", new { first_name = "Different" }))).AssertErrorAsync(HttpStatusCode.Conflict);

        // Concurrent retries: exactly one wins, every one answers with its result.
        var racers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => client.SendAsync(Request("zap-race", new { first_name = "Race" }))));
        var ids = new HashSet<string?>();
        foreach (var r in racers)
        {
            ids.Add((await r.AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetString());
        }
        Assert.Single(ids);
        Assert.Equal(2, await fx.WithDbAsync(db => db.Leads.CountAsync(l => l.GymId == gym.GymId)));
        Assert.Equal(2, (await EventTypesAsync(gym.GymId)).Count);

        // Keys are per gym, and expire after 24 hours.
        var (_, otherClient) = await GymWithWriteKeyAsync();
        await (await otherClient.SendAsync(Request("zap-1", new { first_name = "Once" }))).AssertStatusAsync(HttpStatusCode.Created);
        fx.Clock.Advance(TimeSpan.FromHours(25));
        var afterExpiry = await (await client.SendAsync(Request("zap-1", new { first_name = "Once" }))).AssertStatusAsync(HttpStatusCode.Created);
        Assert.NotEqual(firstBody.GetProperty("id").GetString(), afterExpiry.GetProperty("id").GetString());

        // Concurrent retries of an expired key: each finds the old record and removes it, one creates, all answer with its result.
        var expiredRacers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => client.SendAsync(Request("zap-race", new { first_name = "Race again" }))));
        var renewed = new HashSet<string?>();
        foreach (var r in expiredRacers)
        {
            renewed.Add((await r.AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetString());
        }
        Assert.Single(renewed);
        Assert.DoesNotContain(renewed.Single(), ids);
        Assert.Equal(4, await fx.WithDbAsync(db => db.Leads.CountAsync(l => l.GymId == gym.GymId)));
    }

    [Fact]
    public async Task Concurrent_actions_each_commit_their_lead_with_its_event_and_a_failing_one_fails_alone()
    {
        var (gym, client) = await GymWithWriteKeyAsync();
        HttpRequestMessage Request(string? key, string name)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/api/zapier/actions?type=create_lead") { Content = System.Net.Http.Json.JsonContent.Create(new { first_name = name }) };
            if (key is not null)
            {
                request.Headers.Add("Idempotency-Key", key);
            }
            return request;
        }
        // On SQLite concurrent actions share a transaction; the same-key racers make such a batch fail, and the others
        // must still be written, each once (25 requests: within the documented limit of 30 a minute).
        var sends = Enumerable.Range(0, 20).Select(i => Request(null, $"Lead {i}"))
            .Concat(Enumerable.Range(0, 5).Select(_ => Request("same", "Keyed")))
            .Select(client.SendAsync);
        var responses = await Task.WhenAll(sends);
        var created = new HashSet<Guid>();
        foreach (var response in responses)
        {
            created.Add((await response.AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid());
        }
        Assert.Equal(21, created.Count);
        var leadIds = await fx.WithDbAsync(db => db.Leads.Where(l => l.GymId == gym.GymId).Select(l => l.Id).ToListAsync());
        Assert.Equal(created.Order(), leadIds.Order());
        var events = await fx.WithDbAsync(db => db.OutboxEvents.Where(e => e.GymId == gym.GymId).Select(e => e.Data).ToListAsync());
        Assert.Equal(created.Order(), events.Select(d => JsonDocument.Parse(d).RootElement.GetProperty("lead_id").GetGuid()).Order());
    }
}
