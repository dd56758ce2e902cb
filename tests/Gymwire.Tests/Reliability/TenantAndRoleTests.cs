using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Stripe;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Reliability;

/// <summary>
/// R6: for every operation that takes an id, gym A's owner and A's keys get 404 on gym B's ids (keys get
/// 403 on owner-only routes, before any lookup) and B's data is untouched; read keys cannot write; mass
/// assignment of gym_id, id or is_active through bodies has no effect. A new route with a path parameter
/// fails this test until it gets a resolver below, so no route escapes the check.
/// </summary>
public abstract class TenantAndRoleTests(GymwireFixture fx)
{
    public sealed class Sqlite(UnlimitedSqlite f) : TenantAndRoleTests(f), IClassFixture<UnlimitedSqlite>;
    public sealed class Postgres(UnlimitedPostgres f) : TenantAndRoleTests(f), IClassFixture<UnlimitedPostgres>;

    /// <param name="Anonymous">Open routes (login, the Stripe webhook, which authenticates by signature) are not tenant-scoped by a bearer.</param>
    private sealed record Operation(string Method, string Path, bool OwnerOnly, bool Anonymous);

    private async Task<List<Operation>> OperationsAsync()
    {
        var document = JsonNode.Parse(await fx.Client().GetStringAsync("/openapi.json"))!;
        return document["paths"]!.AsObject()
            .SelectMany(p => p.Value!.AsObject().Select(m => new Operation(m.Key.ToUpperInvariant(), p.Key,
                m.Value!["security"]?.AsArray().All(r => !r!.AsObject().ContainsKey("apiKey")) == true,
                m.Value!["security"]?.AsArray().Any(r => r!.AsObject().Count == 0) == true)))
            .ToList();
    }

    /// <summary>Gym B with one of everything, and the ids to aim at.</summary>
    private async Task<Dictionary<string, string>> SeedVictimAsync(TestGym b)
    {
        using var owner = b.Owner();
        var ids = new Dictionary<string, string>();
        var member = await (await owner.PostJsonAsync("/api/gym/members", new { name = "Victim", user_id = "user_victim" })).AssertStatusAsync(HttpStatusCode.Created);
        ids["/api/gym/members/{id}"] = member.GetProperty("id").GetString()!;
        var plan = (await (await owner.PostJsonAsync("/api/gym/plans", new { name = "P", price_cents = 100 })).JsonAsync()).GetProperty("id").GetString();
        ids["/api/gym/plans/{id}"] = plan!;
        foreach (var (collection, body) in new (string, object)[]
        {
            ("leads", new { first_name = "Victim" }),
            ("checkins", new { user_id = "user_victim" }),
            ("classes", new { title = "Victim class", discipline = "bjj", day_of_week = 1, start_time = "18:00", duration_mins = 60 }),
            ("sessions", new { user_id = "user_victim", session_type = "gi", date = "2026-04-16", duration_mins = 60 }),
            ("contracts", new { user_id = "user_victim", title = "Victim contract" }),
        })
        {
            var created = await (await owner.PostJsonAsync($"/api/gym/{collection}", body)).AssertStatusAsync(HttpStatusCode.Created);
            ids[$"/api/gym/{collection}/{{id}}"] = created.GetProperty("id").GetString()!;
        }
        var membership = await (await owner.PostJsonAsync("/api/gym/memberships", new { user_id = "user_victim", plan_id = plan })).AssertStatusAsync(HttpStatusCode.Created);
        ids["/api/gym/memberships/{id}"] = membership.GetProperty("id").GetString()!;
        var payment = await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_victim", amount_cents = 500 })).AssertStatusAsync(HttpStatusCode.Created);
        ids["/api/gym/payments/{id}"] = payment.GetProperty("id").GetString()!;
        var key = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "victim key" })).AssertStatusAsync(HttpStatusCode.Created);
        ids["/api/gym/api-keys/{id}"] = key.GetProperty("id").GetString()!;
        var sms = await (await owner.PostJsonAsync("/api/zapier/actions?type=send_sms", new { phone = "+15551234567", message = "victim" })).AssertStatusAsync(HttpStatusCode.Created);
        ids["/api/gym/sms/{id}"] = sms.GetProperty("id").GetString()!;
        var webhook = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url = "https://receiver.example.com/hook" })).AssertStatusAsync(HttpStatusCode.Created);
        var webhookId = webhook.GetProperty("id").GetString()!;
        ids["/api/gym/webhooks/{id}"] = webhookId;
        var delivery = await (await owner.PostJsonAsync($"/api/gym/webhooks/{webhookId}/test", new { @event = "member.joined" })).AssertStatusAsync(HttpStatusCode.OK);
        ids[$"/api/gym/webhooks/{webhookId}/deliveries/{{delivery_id}}"] = delivery.GetProperty("id").GetString()!;
        // A Stripe event kept because it matched no member, which the owner may process again.
        var stripeSecret = StripeSigner.NewSecret();
        await (await owner.PutAsJsonAsync("/api/gym/integrations/stripe", new { endpoint_secret = stripeSecret })).AssertStatusAsync(HttpStatusCode.OK);
        var stripeEvent = StripeSigner.Event("evt_victim", "invoice.paid",
            StripeSigner.PaidInvoice("in_victim", "cus_victim", "nobody@example.com", 4200, "pi_victim"), fx.Clock.GetUtcNow());
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/integrations/stripe/webhook/{b.GymId}")
        {
            Content = new StringContent(stripeEvent, Encoding.UTF8, "application/json"),
        };
        request.Headers.TryAddWithoutValidation("Stripe-Signature", StripeSigner.Sign(stripeEvent, stripeSecret, fx.Clock.GetUtcNow()));
        Assert.Equal("unknown_member", (await (await fx.Client().SendAsync(request))
            .AssertStatusAsync(HttpStatusCode.OK)).GetProperty("outcome").GetString());
        ids["/api/gym/integrations/stripe/events/{id}"] = (await fx.WithDbAsync(db => db.StripeEvents
            .Where(e => e.GymId == b.GymId && e.StripeEventId == "evt_victim").Select(e => e.Id).SingleAsync())).ToString();
        return ids;
    }

    private static string Resolve(string path, Dictionary<string, string> ids)
    {
        var resolved = path;
        foreach (var (template, id) in ids.OrderBy(kv => kv.Key.Length))
        {
            var placeholder = template[template.LastIndexOf('{')..];
            var prefix = template[..template.LastIndexOf('{')];
            if (resolved.StartsWith(prefix, StringComparison.Ordinal) && resolved[prefix.Length..].StartsWith(placeholder, StringComparison.Ordinal))
            {
                resolved = prefix + id + resolved[(prefix.Length + placeholder.Length)..];
            }
        }
        Assert.False(resolved.Contains('{', StringComparison.Ordinal), $"No resolver for {path}: add one to {nameof(TenantAndRoleTests)}");
        return resolved;
    }

    private async Task<string> SnapshotAsync(TestGym gym)
    {
        using var owner = gym.Owner();
        var parts = new List<string>();
        foreach (var url in new[] { "/api/gym/members?include_left=true", "/api/gym/memberships", "/api/gym/payments", "/api/gym/api-keys", "/api/gym/events?limit=200", "/api/gym/webhooks", "/api/gym/sms" })
        {
            parts.Add(await owner.GetStringAsync(url));
        }
        return string.Join("\n", parts);
    }

    [Fact]
    public async Task Gym_A_owner_and_keys_get_404_on_every_route_with_gym_B_ids_and_change_nothing()
    {
        var a = await fx.CreateGymAsync("A");
        var b = await fx.CreateGymAsync("B");
        var ids = await SeedVictimAsync(b);
        var keyA = (await (await a.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read", "write" } })).JsonAsync()).GetProperty("key").GetString();
        var before = await SnapshotAsync(b);

        foreach (var op in (await OperationsAsync()).Where(o => o.Path.Contains('{', StringComparison.Ordinal) && !o.Anonymous))
        {
            var url = Resolve(op.Path, ids);
            foreach (var (who, client) in new[] { ("owner A", a.Owner()), ("key A", fx.Client(keyA)) })
            {
                using var request = new HttpRequestMessage(new HttpMethod(op.Method), url);
                if (op.Method is "POST" or "PATCH" or "PUT")
                {
                    request.Content = new StringContent("{\"name\":\"hijack\",\"url\":\"https://example.com/x\",\"is_active\":false,\"event\":\"member.joined\",\"since\":\"2026-01-01T00:00:00Z\"}", System.Text.Encoding.UTF8, "application/json");
                }
                var response = await client.SendAsync(request);
                var expected = who == "key A" && op.OwnerOnly ? HttpStatusCode.Forbidden : HttpStatusCode.NotFound;
                Assert.True(response.StatusCode == expected, $"{who} {op.Method} {op.Path}: expected {(int)expected}, got {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                await response.AssertErrorAsync(expected);
            }
        }
        Assert.Equal(before, await SnapshotAsync(b));
    }

    [Fact]
    public async Task A_read_only_key_gets_403_on_every_write_and_writes_nothing()
    {
        var gym = await fx.CreateGymAsync();
        var ids = await SeedVictimAsync(gym);
        var readKey = (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read" } })).JsonAsync()).GetProperty("key").GetString();
        var before = await SnapshotAsync(gym);
        using var client = fx.Client(readKey);
        foreach (var op in (await OperationsAsync()).Where(o => !o.Anonymous && (o.Method is "POST" or "PATCH" or "PUT" or "DELETE" && o.Path.StartsWith("/api/gym", StringComparison.Ordinal) || o.Path.StartsWith("/api/zapier/actions", StringComparison.Ordinal))))
        {
            using var request = new HttpRequestMessage(new HttpMethod(op.Method), Resolve(op.Path, ids) + (op.Path.EndsWith("actions", StringComparison.Ordinal) ? "?type=create_lead" : ""));
            request.Content = new StringContent("{\"first_name\":\"x\",\"name\":\"x\"}", System.Text.Encoding.UTF8, "application/json");
            await (await client.SendAsync(request)).AssertErrorAsync(HttpStatusCode.Forbidden);
        }
        // The snapshot includes the key list, whose last_used moved; compare everything else.
        Assert.Equal(Strip(before), Strip(await SnapshotAsync(gym)));
    }

    private static string Strip(string snapshot) => System.Text.RegularExpressions.Regex.Replace(snapshot, "\"last_used\":(null|\"[^\"]*\")", "");

    [Fact]
    public async Task Mass_assignment_of_gym_id_id_and_is_active_has_no_effect()
    {
        var a = await fx.CreateGymAsync();
        var b = await fx.CreateGymAsync();
        var forgedId = Guid.NewGuid();
        using var owner = a.Owner();
        var member = await (await owner.PostJsonAsync("/api/gym/members", new { name = "M", gym_id = b.GymId, id = forgedId, left_at = "2020-01-01T00:00:00Z", joined_at = "2000-01-01T00:00:00Z" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.NotEqual(forgedId, member.GetProperty("id").GetGuid());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, member.GetProperty("left_at").ValueKind);
        Assert.Equal("2026-04-16", member.GetProperty("joined_at").GetString()![..10]);
        var memberId = member.GetProperty("id").GetGuid();

        var patched = await (await owner.PatchJsonAsync($"/api/gym/members/{memberId}", new { gym_id = b.GymId, id = forgedId, name = "M2" })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(memberId, patched.GetProperty("id").GetGuid());
        await (await owner.GetAsync($"/api/gym/members/{memberId}")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Empty((await (await b.Owner().GetAsync("/api/gym/members")).JsonAsync()).GetProperty("members").EnumerateArray());

        var key = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "k", gym_id = b.GymId, id = forgedId, is_active = false, key_prefix = "cs_00000000", last_used = "2020-01-01T00:00:00Z" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.NotEqual(forgedId, key.GetProperty("id").GetGuid());
        Assert.True(key.GetProperty("is_active").GetBoolean());
        Assert.Equal(key.GetProperty("key").GetString()![..11], key.GetProperty("key_prefix").GetString());
        var me = await (await fx.Client(key.GetProperty("key").GetString()).GetAsync("/api/me")).JsonAsync();
        Assert.Equal(a.GymId, me.GetProperty("gym_id").GetGuid());

        var lead = await (await owner.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "L", gym_id = b.GymId, id = forgedId })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.NotEqual(forgedId, lead.GetProperty("id").GetGuid());
        Assert.Empty((await (await b.Owner().GetAsync("/api/gym/leads")).JsonAsync()).GetProperty("leads").EnumerateArray());

        var webhook = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url = "https://receiver.example.com/a", gym_id = b.GymId, id = forgedId, is_active = false, created_at = "2000-01-01T00:00:00Z" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.NotEqual(forgedId, webhook.GetProperty("id").GetGuid());
        Assert.True(webhook.GetProperty("is_active").GetBoolean());
        Assert.Empty((await (await b.Owner().GetAsync("/api/gym/webhooks")).JsonAsync()).GetProperty("webhooks").EnumerateArray());
        var patched2 = await (await owner.PatchJsonAsync($"/api/gym/webhooks/{webhook.GetProperty("id").GetGuid()}", new { gym_id = b.GymId, id = forgedId })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(webhook.GetProperty("id").GetGuid(), patched2.GetProperty("id").GetGuid());
    }

    /// <summary>A valid body for every operation that takes one (a new such route fails the test below until it gets one here).</summary>
    private static readonly Dictionary<string, Func<string, JsonObject>> ValidBodies = new()
    {
        ["POST /api/gym/api-keys"] = _ => new() { ["name"] = "k" },
        ["POST /api/gym/members"] = _ => new() { ["name"] = "Forger", ["user_id"] = "user_forger" },
        ["PATCH /api/gym/members/{id}"] = _ => new() { ["name"] = "Forger 2" },
        ["POST /api/gym/plans"] = _ => new() { ["name"] = "Plan", ["price_cents"] = 100 },
        ["POST /api/gym/memberships"] = plan => new() { ["user_id"] = "user_victim", ["plan_id"] = plan },
        ["POST /api/gym/payments"] = _ => new() { ["user_id"] = "user_victim", ["amount_cents"] = 500 },
        ["POST /api/gym/sessions"] = _ => new() { ["user_id"] = "user_victim", ["session_type"] = "gi", ["date"] = "2026-04-16", ["duration_mins"] = 60 },
        ["POST /api/gym/checkins"] = _ => new() { ["user_id"] = "user_victim" },
        ["POST /api/gym/classes"] = _ => new() { ["title"] = "Fundamentals", ["discipline"] = "bjj", ["day_of_week"] = 1, ["start_time"] = "18:00", ["duration_mins"] = 60 },
        ["POST /api/gym/leads"] = _ => new() { ["first_name"] = "Lead" },
        ["POST /api/gym/contracts"] = _ => new() { ["user_id"] = "user_victim", ["title"] = "Waiver" },
        ["POST /api/zapier/actions"] = _ => new() { ["first_name"] = "Zap lead" },
        ["PUT /api/gym/integrations/stripe"] = _ => new() { ["endpoint_secret"] = "whsec_" + new string('a', 32) },
        ["PUT /api/gym/exports/schedule"] = _ => new() { ["frequency"] = "weekly" },
        ["POST /api/gym/webhooks"] = _ => new() { ["url"] = "https://receiver.example.com/forged" },
        ["PATCH /api/gym/webhooks/{id}"] = _ => new() { ["url"] = "https://receiver.example.com/forged-2" },
        ["POST /api/gym/webhooks/{id}/test"] = _ => new() { ["event"] = "member.joined" },
        ["POST /api/gym/webhooks/{id}/retry-failed"] = _ => new() { ["since"] = "2026-01-01T00:00:00Z" },
        // The fixture's owners all have this password; changing it to itself keeps this session (it ends the others).
        ["POST /api/auth/password"] = _ => new() { ["current_password"] = "correct-horse-battery", ["new_password"] = "correct-horse-battery" },
    };

    [Fact]
    public async Task Mass_assignment_through_every_request_body_has_no_effect()
    {
        var a = await fx.CreateGymAsync("Forger");
        var b = await fx.CreateGymAsync("Target");
        var ids = await SeedVictimAsync(a);
        await SeedVictimAsync(b);
        using var owner = a.Owner();
        var plan = (await (await owner.PostJsonAsync("/api/gym/plans", new { name = "Base", price_cents = 100 })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetString()!;
        var before = await SnapshotAsync(b);
        var forged = Guid.NewGuid();
        var documented = (JsonNode.Parse(await fx.Client().GetStringAsync("/openapi.json"))!)["components"]!["schemas"]!.AsObject();

        foreach (var op in (await OperationsAsync()).Where(o => !o.Anonymous && o.Method is "POST" or "PATCH" or "PUT" && o.Path is not ("/api/auth/logout" or "/api/auth/logout-everywhere")))
        {
            var name = $"{op.Method} {op.Path}";
            var body = ValidBodies.TryGetValue(name, out var valid) ? valid(plan) : null;
            var takesBody = await OperationsSpecAsync(op) is not null;
            Assert.False(takesBody && body is null, $"No valid body for {name}: add one to {nameof(ValidBodies)}");
            body ??= [];
            // The fields a client must never set, unless the request documents them (PATCH webhooks takes is_active).
            var own = (await OperationsSpecAsync(op)) is { } schema && documented[schema]?["properties"] is JsonObject props ? props.Select(p => p.Key).ToHashSet() : [];
            foreach (var (field, value) in new (string, JsonNode)[] { ("gym_id", b.GymId.ToString()), ("id", forged.ToString()), ("is_active", false), ("created_at", "2000-01-01T00:00:00Z"), ("owner_id", forged.ToString()) })
            {
                if (!own.Contains(field))
                {
                    body[field] = value.DeepClone();
                }
            }
            var url = Resolve(op.Path, ids) + (op.Path == "/api/zapier/actions" ? "?type=create_lead" : "");
            using var request = new HttpRequestMessage(new HttpMethod(op.Method), url) { Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
            var response = await owner.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            var status = (int)response.StatusCode;
            if (takesBody && !(name == "PUT /api/gym/exports/schedule" && status == 409 && text.Contains("Email is not configured", StringComparison.Ordinal)))
            {
                // A real write happened with the forged fields in the body (this fixture has no SMTP server, so the
                // report schedule is refused before its write; its forged fields are still checked below).
                Assert.True(status is >= 200 and < 300, $"{name} with a valid body: {status} {text}");
            }
            else
            {
                Assert.True(status < 500, $"{name}: {status} {text}");
            }
            Assert.DoesNotContain(forged.ToString(), text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(b.GymId.ToString(), text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("2000-01-01", text, StringComparison.Ordinal);
            Assert.DoesNotContain("\"is_active\":false", text, StringComparison.Ordinal);
        }

        Assert.Equal(before, await SnapshotAsync(b));
        Assert.DoesNotContain(forged.ToString(), await DatabaseDump.AllTextAsync(fx), StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The request body's schema name, when the operation takes a JSON object body.</summary>
    private async Task<string?> OperationsSpecAsync(Operation op)
    {
        _document ??= JsonNode.Parse(await fx.Client().GetStringAsync("/openapi.json"))!;
        var schema = _document["paths"]![op.Path]![op.Method.ToLowerInvariant()]!["requestBody"]?["content"]?["application/json"]?["schema"];
        if (schema is null)
        {
            return null;
        }
        var reference = schema["$ref"]?.GetValue<string>() ?? (schema["oneOf"] as JsonArray)?.Select(s => s?["$ref"]?.GetValue<string>()).FirstOrDefault(r => r is not null);
        return reference?[(reference.LastIndexOf('/') + 1)..] ?? (schema["oneOf"] is not null ? "" : null);
    }

    private JsonNode? _document;
}
