using System.Net;
using System.Text;
using Gymwire.Tests.Dashboard;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Foundation;

/// <summary>
/// Input a client can send that the stores cannot keep (U+0000 and the other C0 controls but tab, CR and LF), oversized
/// request lines and headers, unknown filter values and unbindable query values: each gets 400 (414, 431) in the error
/// shape, the same on SQLite and PostgreSQL, writes nothing, and is logged as a client error, not a server fault.
/// </summary>
public abstract class InputValidationTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : InputValidationTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : InputValidationTests(f), IClassFixture<PostgresGymwire>;

    private async Task<(TestGym Gym, HttpClient Owner, HttpClient Writer)> GymAsync()
    {
        var gym = await fx.CreateGymAsync();
        var owner = gym.Owner();
        var key = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Zapier", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        return (gym, owner, fx.Client(key.GetProperty("key").GetString()));
    }

    private Task<string> RowsAsync(Guid gymId) => fx.WithDbAsync(async db =>
        $"members {await db.Members.CountAsync(m => m.GymId == gymId)}, leads {await db.Leads.CountAsync(l => l.GymId == gymId)}, " +
        $"webhooks {await db.WebhookSubscriptions.CountAsync(w => w.GymId == gymId)}, keys {await db.ApiKeys.CountAsync(k => k.GymId == gymId)}, " +
        $"events {await db.OutboxEvents.CountAsync(e => e.GymId == gymId)}");

    [Theory]
    [InlineData("\u0000")]
    [InlineData("\u0001")]
    [InlineData("\u001B")]
    public async Task Control_characters_in_json_strings_are_400_and_write_nothing(string control)
    {
        var (gym, owner, writer) = await GymAsync();
        var before = await RowsAsync(gym.GymId);
        var member = await (await owner.PostJsonAsync("/api/gym/members", new { name = "Tom" })).AssertStatusAsync(HttpStatusCode.Created);
        var memberId = member.GetProperty("id").GetString();
        var afterMember = await RowsAsync(gym.GymId);
        using var anonymous = fx.Client();
        var refused = new (Func<Task<HttpResponseMessage>> Send, string Field)[]
        {
            (() => anonymous.PostJsonAsync("/api/auth/login", new { email = $"owner{control}@example.com", password = "whatever-password" }), "email"),
            (() => owner.PostJsonAsync("/api/gym/members", new { name = $"Ana{control}Silva" }), "name"),
            (() => owner.PatchJsonAsync($"/api/gym/members/{memberId}", new { name = $"Tom{control}" }), "name"),
            (() => writer.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = $"Jo{control}hn", email = "john@example.com" }), "first_name"),
            (() => owner.PostJsonAsync("/api/gym/webhooks", new { url = $"https://hooks.example.com/{control}x" }), "url"),
            (() => owner.PostJsonAsync("/api/gym/webhooks", new { url = "https://hooks.example.com/x", events = new[] { $"member.joined{control}" } }), "events"),
            (() => owner.PostJsonAsync("/api/gym/api-keys", new { name = $"Key{control}", scopes = new[] { "read" } }), "name"),
        };
        foreach (var (send, field) in refused)
        {
            var message = await (await send()).AssertErrorAsync(HttpStatusCode.BadRequest);
            Assert.Contains($"'{field}'", message, StringComparison.Ordinal);
            Assert.Contains($"U+{(int)control[0]:X4}", message, StringComparison.Ordinal);
        }
        Assert.NotEqual(before, afterMember);
        Assert.Equal(afterMember, await RowsAsync(gym.GymId));
        var stored = await fx.WithDbAsync(db => db.Members.Where(m => m.GymId == gym.GymId).Select(m => m.Name).SingleAsync());
        Assert.Equal("Tom", stored);
    }

    [Fact]
    public async Task A_long_field_name_is_cut_on_a_character_boundary_in_the_message()
    {
        var (_, owner, _) = await GymAsync();
        // The 64th and 65th UTF-16 units are one emoji: cutting between them left half a character in the message.
        var name = new string('k', 63) + "\U0001F600" + "tail";
        var message = await (await owner.PostRawAsync("/api/gym/members", $$"""{"{{name}}":"a\u0001b","name":"Ana"}""")).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains($"Field '{new string('k', 63)}…'", message, StringComparison.Ordinal);
        Assert.DoesNotContain('\uFFFD', message);
    }

    [Fact]
    public async Task A_control_character_cannot_pass_behind_a_lone_surrogate_or_another_charset()
    {
        var (gym, owner, writer) = await GymAsync();
        var before = await RowsAsync(gym.GymId);
        var start = fx.Logs.Lines.Count;
        // The platform's reader skips an unknown property without decoding it, so a lone surrogate there stopped the
        // guard's scan before the known field behind it.
        foreach (var (client, url, body) in new[]
        {
            (owner, "/api/gym/members", """{"x":"\ud800","name":"a\u0000b"}"""),
            (writer, "/api/zapier/actions?type=create_lead", """{"x":"\udc00","first_name":"Jo\u0000hn"}"""),
        })
        {
            var message = await (await client.PostRawAsync(url, body)).AssertErrorAsync(HttpStatusCode.BadRequest);
            Assert.Contains("lone surrogate", message, StringComparison.Ordinal);
        }
        // UTF-16 passes a UTF-8 check byte for byte, and the platform's reader would transcode it past the guard.
        using var utf16 = new ByteArrayContent(Encoding.Unicode.GetBytes("""{"name":"a\u0000b"}"""));
        utf16.Headers.TryAddWithoutValidation("Content-Type", "application/json; charset=utf-16");
        Assert.Contains("UTF-8", await (await owner.PostAsync("/api/gym/members", utf16)).AssertErrorAsync(HttpStatusCode.UnsupportedMediaType), StringComparison.Ordinal);
        // An unknown charset made the platform's reader throw (a 500), even where no sign-in is needed.
        using var anonymous = fx.Client();
        foreach (var (client, url, body) in new[]
        {
            (anonymous, "/api/auth/login", """{"email":"a@example.com","password":"whatever-password"}"""),
            (owner, "/api/gym/members", """{"name":"Ana"}"""),
        })
        {
            await (await client.PostAsync(url, Json(body, "application/json; charset=bogus"))).AssertErrorAsync(HttpStatusCode.UnsupportedMediaType);
        }
        Assert.Equal(before, await RowsAsync(gym.GymId));

        // UTF-8 spelled with quotes or without its dash is UTF-8.
        foreach (var contentType in new[] { "application/json; charset=\"utf-8\"", "application/json; charset=UTF8" })
        {
            await (await owner.PostAsync("/api/gym/members", Json("""{"name":"Ana"}""", contentType))).AssertStatusAsync(HttpStatusCode.Created);
        }
        Assert.Equal(2, await fx.WithDbAsync(db => db.Members.CountAsync(m => m.GymId == gym.GymId)));
        fx.Logs.AssertNoErrorsSince(start);
    }

    private static ByteArrayContent Json(string body, string contentType)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        return content;
    }

    [Fact]
    public async Task Tab_cr_and_lf_are_accepted_in_free_text()
    {
        var (_, owner, writer) = await GymAsync();
        var member = await (await owner.PostJsonAsync("/api/gym/members", new { name = "Ana\tSilva" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("Ana\tSilva", member.GetProperty("name").GetString());
        var lead = await (await writer.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "John", last_name = "Doe\r\nJr" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("Doe\r\nJr", lead.GetProperty("last_name").GetString());
    }

    [Theory]
    [InlineData("/api/gym/sms?status=sent%00")]
    [InlineData("/api/gym/integrations/stripe/events?outcome=%00")]
    [InlineData("/api/gym/events?type=member.joined%01")]
    [InlineData("/api/gym/exports/members.csv?from=2026-01-01%00&to=2026-01-31")]
    [InlineData("/api/gym/members?x%00=1")]
    public async Task Control_characters_in_query_strings_are_400(string url)
    {
        var (_, owner, _) = await GymAsync();
        var message = await (await owner.GetAsync(url)).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains("control character", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Control_characters_in_dashboard_forms_are_400_and_write_nothing()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var response = await browser.SubmitAsync("/settings/api-keys/new", ("Input.Label", "Zap\u0000ier"), ("Input.Permissions", "read"));
        var message = await response.AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains("U+0000", message, StringComparison.Ordinal);
        response = await browser.SubmitAsync("/settings/webhooks/new", ("Input.Url", "https://hooks.example.com/\u0000"), ("Input.Events", "member.joined"));
        await response.AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Equal("members 0, leads 0, webhooks 0, keys 0, events 0", await RowsAsync(gym.GymId));
        // The same forms with clean text still work.
        response = await browser.SubmitAsync("/settings/api-keys/new", ("Input.Label", "Zapier"), ("Input.Permissions", "read"));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("members 0, leads 0, webhooks 0, keys 1, events 0", await RowsAsync(gym.GymId));
    }

    [Theory]
    [InlineData("/api/gym/members?include_left=maybe", "'include_left'")]
    [InlineData("/api/gym/events?after_sequence=first", "'after_sequence'")]
    [InlineData("/api/gym/members?limit=many", "'limit'")]
    public async Task Binding_failures_name_the_query_parameter_as_the_client_sent_it(string url, string expected)
    {
        var (_, owner, _) = await GymAsync();
        var message = await (await owner.GetAsync(url)).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains(expected, message, StringComparison.Ordinal);
        Assert.DoesNotContain("includeLeft", message, StringComparison.Ordinal);
        Assert.DoesNotContain("afterSequence", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/api/gym/sms?status=bounced", "queued, sending, sent, failed, delivered, undelivered")]
    [InlineData("/api/gym/sms?status=SENT", "queued, sending, sent, failed, delivered, undelivered")]
    [InlineData("/api/gym/integrations/stripe/events?outcome=maybe", "recorded, already_recorded")]
    [InlineData("/api/gym/events?type=member.exploded", "member.joined")]
    [InlineData("/api/gym/events?after_sequence=-1", "'after_sequence' must be 0 or more")]
    public async Task Unknown_filter_values_are_400_naming_the_allowed_values(string url, string allowed)
    {
        var (_, owner, _) = await GymAsync();
        var message = await (await owner.GetAsync(url)).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains(allowed, message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Known_filter_values_are_accepted()
    {
        var (_, owner, _) = await GymAsync();
        foreach (var status in new[] { "queued", "sending", "sent", "failed", "delivered", "undelivered" })
        {
            await (await owner.GetAsync($"/api/gym/sms?status={status}")).AssertStatusAsync(HttpStatusCode.OK);
        }
        foreach (var outcome in new[] { "recorded", "already_recorded", "ignored_unknown_type", "ignored", "unknown_member", "unknown_payment", "unknown_subscription" })
        {
            await (await owner.GetAsync($"/api/gym/integrations/stripe/events?outcome={outcome}")).AssertStatusAsync(HttpStatusCode.OK);
        }
    }

    [Fact]
    public async Task Too_long_request_lines_and_headers_get_414_and_431_in_the_error_shape()
    {
        var (_, owner, _) = await GymAsync();
        var message = await (await owner.GetAsync("/api/gym/members?pad=" + new string('a', 10_000))).AssertErrorAsync(HttpStatusCode.RequestUriTooLong);
        Assert.Contains("too long", message, StringComparison.Ordinal);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/gym/members");
        request.Headers.Add("X-Padding", new string('b', 40_000));
        message = await (await owner.SendAsync(request)).AssertErrorAsync(HttpStatusCode.RequestHeaderFieldsTooLarge);
        Assert.Contains("too large", message, StringComparison.Ordinal);
        // Just under the limits is fine.
        await (await owner.GetAsync("/api/gym/members?pad=" + new string('a', 7_000))).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Malformed_client_input_is_logged_once_briefly_and_not_as_an_error()
    {
        var (gym, owner, writer) = await GymAsync();
        var start = fx.Logs.Lines.Count;
        await (await owner.PostRawAsync("/api/gym/members", "{\"name\": ")).AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await owner.PostRawAsync("/api/gym/members", "{\"name\": 5}")).AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await owner.PostRawAsync("/api/gym/members", "{\"name\": \"a\\u0000\"}")).AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await owner.GetAsync("/api/gym/members?include_left=maybe")).AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await owner.PostAsync("/api/gym/members", new StringContent("", Encoding.UTF8, "application/json"))).AssertErrorAsync(HttpStatusCode.BadRequest);
        using var badForm = new StringContent("--x\r\nbroken", Encoding.UTF8);
        badForm.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse("multipart/form-data; boundary=x");
        var formResponse = await fx.Client().PostAsync("/login", badForm);
        await formResponse.AssertErrorAsync(HttpStatusCode.BadRequest);

        var lines = fx.Logs.Lines.Skip(start).ToList();
        fx.Logs.AssertNoErrorsSince(start);
        Assert.DoesNotContain(lines, l => l.Contains("   at ", StringComparison.Ordinal) || l.Contains("Exception:", StringComparison.Ordinal));
        var clientErrors = lines.Where(l => l.Contains("Client error", StringComparison.Ordinal)).ToList();
        Assert.Equal(6, clientErrors.Count);
        Assert.All(clientErrors, l => Assert.DoesNotContain('\n', l.TrimEnd()));
    }
}
