using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Reliability;

namespace Gymwire.Tests.OpenApi;

/// <summary>
/// The document's <c>required</c> lists are a contract too: a generated client refuses to send a request without
/// them. Each is checked against the server: the required fields alone make a valid request, and each one left
/// out gives a 400 naming it.
/// </summary>
public sealed class OpenApiRequiredFieldsTests(OpenApiRequiredFieldsTests.Fixture fx) : IClassFixture<OpenApiRequiredFieldsTests.Fixture>
{
    /// <summary>
    /// No rate limits (the check sends a few requests per operation), and an SMTP host so the report schedule can be
    /// set (nothing is sent: the fixture's clock never reaches a report).
    /// </summary>
    public sealed class Fixture() : UnlimitedFixture(Store.Sqlite)
    {
        protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
            base.Settings().Concat([new("Email:Smtp:Host", "127.0.0.1"), new("Email:Smtp:Port", "9"), new("Email:Smtp:From", "Gymwire <reports@gymwire.test>")]);
    }

    /// <summary>
    /// Per operation with a JSON body (component schema): a request that succeeds, built fresh for each send
    /// (unique ids, its own resources for paths with ids).
    /// </summary>
    private static readonly Dictionary<string, Func<TestGym, Task<(string Path, JsonObject Body)>>> ValidRequests = new()
    {
        ["POST /api/auth/login"] = g => Ok("/api/auth/login", new() { ["email"] = g.OwnerEmail, ["password"] = g.OwnerPassword }),
        // Changes the password to itself, so every send finds the same current password.
        ["POST /api/auth/password"] = g => Ok("/api/auth/password", new() { ["current_password"] = g.OwnerPassword, ["new_password"] = g.OwnerPassword }),
        ["POST /api/gym/api-keys"] = g => Ok("/api/gym/api-keys", new() { ["name"] = "Doc key", ["scopes"] = new JsonArray("read"), ["expires_at"] = "2030-01-01T00:00:00Z" }),
        ["POST /api/gym/members"] = g => Ok("/api/gym/members", new() { ["name"] = "Doc Member", ["email"] = "doc@example.com", ["phone"] = "+15551234567", ["role"] = "member", ["user_id"] = Unique("user") }),
        ["PATCH /api/gym/members/{id}"] = async g =>
            ($"/api/gym/members/{(await CreateAsync(g, "/api/gym/members", new { name = "Doc Member", user_id = Unique("user") })).GetProperty("id").GetGuid()}",
             new() { ["name"] = "Renamed", ["email"] = "renamed@example.com", ["phone"] = "+15557654321", ["role"] = "coach" }),
        ["POST /api/gym/plans"] = g => Ok("/api/gym/plans", new() { ["name"] = "Doc Plan", ["price_cents"] = 4900, ["interval"] = "month" }),
        ["POST /api/gym/memberships"] = async g =>
            ("/api/gym/memberships", new() { ["user_id"] = await MemberAsync(g), ["plan_id"] = (await CreateAsync(g, "/api/gym/plans", new { name = "Doc Plan", price_cents = 4900 })).GetProperty("id").GetGuid() }),
        ["POST /api/gym/payments"] = async g => ("/api/gym/payments", new() { ["user_id"] = await MemberAsync(g), ["amount_cents"] = 4900, ["currency"] = "usd", ["status"] = "paid" }),
        ["POST /api/gym/sessions"] = async g => ("/api/gym/sessions", new() { ["user_id"] = await MemberAsync(g), ["session_type"] = "gi", ["date"] = "2026-04-16", ["duration_mins"] = 60 }),
        ["POST /api/gym/checkins"] = async g => ("/api/gym/checkins", new() { ["user_id"] = await MemberAsync(g), ["status"] = "approved" }),
        ["POST /api/gym/classes"] = g => Ok("/api/gym/classes", new() { ["title"] = "Fundamentals", ["discipline"] = "bjj", ["day_of_week"] = 1, ["start_time"] = "18:00", ["duration_mins"] = 60 }),
        ["POST /api/gym/leads"] = g => Ok("/api/gym/leads", new() { ["first_name"] = "John", ["last_name"] = "Doe", ["email"] = "john@example.com", ["phone"] = "+15551234567", ["source"] = "website" }),
        ["POST /api/gym/contracts"] = async g => ("/api/gym/contracts", new() { ["user_id"] = await MemberAsync(g), ["title"] = "Membership agreement" }),
        ["PUT /api/gym/integrations/stripe"] = g => Ok("/api/gym/integrations/stripe", new() { ["endpoint_secret"] = "whsec_" + Guid.NewGuid().ToString("N") }),
        ["PUT /api/gym/exports/schedule"] = g => Ok("/api/gym/exports/schedule", new()
        {
            ["frequency"] = "weekly", ["send_to_owners"] = true, ["recipients"] = new JsonArray("books@example.com"), ["format"] = "csv", ["quickbooks_date_order"] = "dmy",
        }),
        ["POST /api/gym/webhooks"] = g => Ok("/api/gym/webhooks", new() { ["url"] = "https://receiver.example.com/doc", ["events"] = new JsonArray("member.joined"), ["secret"] = "doc-secret-0123456789abcdef0123" }),
        ["PATCH /api/gym/webhooks/{id}"] = async g =>
            ($"/api/gym/webhooks/{(await CreateAsync(g, "/api/gym/webhooks", new { url = "https://receiver.example.com/doc" })).GetProperty("id").GetGuid()}",
             new() { ["url"] = "https://receiver.example.com/moved", ["events"] = new JsonArray("member.left"), ["is_active"] = false }),
        // The body is optional (required: false); its one field is too.
        ["POST /api/gym/webhooks/{id}/test"] = async g =>
            ($"/api/gym/webhooks/{(await CreateAsync(g, "/api/gym/webhooks", new { url = "https://receiver.example.com/doc", events = new[] { "member.joined" } })).GetProperty("id").GetGuid()}/test",
             new() { ["event"] = "member.joined" }),
        ["POST /api/gym/webhooks/{id}/retry-failed"] = async g =>
            ($"/api/gym/webhooks/{(await CreateAsync(g, "/api/gym/webhooks", new { url = "https://receiver.example.com/doc", events = new[] { "member.joined" } })).GetProperty("id").GetGuid()}/retry-failed",
             new() { ["since"] = "2026-01-01T00:00:00Z" }),
    };

    private static Task<(string, JsonObject)> Ok(string path, JsonObject body) => Task.FromResult((path, body));

    private static string Unique(string prefix) => $"{prefix}_{Guid.NewGuid():N}"[..24];

    private static async Task<JsonElement> CreateAsync(TestGym gym, string path, object body)
    {
        using var owner = gym.Owner();
        return await (await owner.PostJsonAsync(path, body)).AssertStatusAsync(HttpStatusCode.Created);
    }

    private static async Task<string> MemberAsync(TestGym gym) =>
        (await CreateAsync(gym, "/api/gym/members", new { name = "Doc Member", user_id = Unique("user") })).GetProperty("user_id").GetString()!;

    [Fact]
    public async Task The_fields_the_document_marks_required_are_exactly_those_the_server_requires()
    {
        var document = JsonNode.Parse(await (await fx.Client().GetAsync("/openapi.json")).Content.ReadAsStringAsync())!;
        var schemas = document["components"]!["schemas"]!.AsObject();
        var withBodies = document["paths"]!.AsObject()
            .SelectMany(p => p.Value!.AsObject().Select(m => (Key: $"{m.Key.ToUpperInvariant()} {p.Key}", Method: m.Key.ToUpperInvariant(), Operation: m.Value!)))
            .Select(o => (o.Key, o.Method, Ref: o.Operation["requestBody"]?["content"]?["application/json"]?["schema"]?["$ref"]?.GetValue<string>()))
            .Where(o => o.Ref is not null)
            .ToList();
        // Every operation with a component request schema is checked (a new one needs a valid request above).
        Assert.Equal(withBodies.Select(o => o.Key).Order(), ValidRequests.Keys.Order());
        var gym = await fx.CreateGymAsync("Required Fields Gym");
        using var owner = gym.Owner();
        foreach (var (key, method, reference) in withBodies)
        {
            var schema = schemas[reference!.Split('/')[^1]]!;
            var required = schema["required"]?.AsArray().Select(r => r!.GetValue<string>()).ToList() ?? [];
            async Task<HttpResponseMessage> SendAsync(Func<JsonObject, JsonObject> shape)
            {
                var (path, body) = await ValidRequests[key](gym);
                Assert.True(required.All(body.ContainsKey), $"{key}: the valid request lacks a documented required field");
                return await owner.SendAsync(new HttpRequestMessage(new HttpMethod(method), path) { Content = JsonContent.Create(shape(body)) });
            }
            // The required fields alone are a valid request: nothing else is required.
            var minimal = await SendAsync(body => new JsonObject(body.Where(p => required.Contains(p.Key)).Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone()))));
            Assert.True(minimal.IsSuccessStatusCode, $"{key} with only {string.Join(", ", required)}: {(int)minimal.StatusCode} {await minimal.Content.ReadAsStringAsync()}");
            // And each of them is required: without it, a 400 naming it.
            foreach (var field in required)
            {
                var without = await SendAsync(body => new JsonObject(body.Where(p => p.Key != field).Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone()))));
                var error = await without.AssertErrorAsync(HttpStatusCode.BadRequest);
                Assert.True(error.Contains(field, StringComparison.Ordinal), $"{key} without '{field}': {error}");
            }
        }
    }

}
