using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Reliability;

namespace Gymwire.Tests.OpenApi;

/// <summary>
/// Every operation the document says answers 201 is sent here; where the answer has a <c>Location</c>, a GET of it
/// by the same caller answers 200 with the created object, and another gym's owner gets 404 there. (Generated
/// clients and HTTP libraries follow <c>Location</c>; it used to point at routes that answered 405.)
/// </summary>
public abstract class LocationHeaderTests(GymwireFixture fx)
{
    public sealed class Sqlite(UnlimitedSqlite f) : LocationHeaderTests(f), IClassFixture<UnlimitedSqlite>;
    public sealed class Postgres(UnlimitedPostgres f) : LocationHeaderTests(f), IClassFixture<UnlimitedPostgres>;

    /// <summary>A valid create per 201 operation (the member <c>user_loc</c> exists), and whether it must set <c>Location</c>.</summary>
    private static readonly Dictionary<string, (string Path, object Body, bool Location)> Creates = new()
    {
        ["POST /api/gym/api-keys"] = ("/api/gym/api-keys", new { name = "Location key" }, true),
        ["POST /api/gym/members"] = ("/api/gym/members", new { name = "Location Member" }, true),
        ["POST /api/gym/plans"] = ("/api/gym/plans", new { name = "Location Plan", price_cents = 4900 }, true),
        ["POST /api/gym/payments"] = ("/api/gym/payments", new { user_id = "user_loc", amount_cents = 4900 }, true),
        ["POST /api/gym/sessions"] = ("/api/gym/sessions", new { user_id = "user_loc", session_type = "gi", date = "2026-04-16", duration_mins = 60 }, true),
        ["POST /api/gym/checkins"] = ("/api/gym/checkins", new { user_id = "user_loc" }, true),
        ["POST /api/gym/classes"] = ("/api/gym/classes", new { title = "Fundamentals", discipline = "bjj", day_of_week = 1, start_time = "18:00", duration_mins = 60 }, true),
        ["POST /api/gym/leads"] = ("/api/gym/leads", new { first_name = "Location" }, true),
        ["POST /api/gym/contracts"] = ("/api/gym/contracts", new { user_id = "user_loc", title = "Membership agreement" }, true),
        ["POST /api/gym/webhooks"] = ("/api/gym/webhooks", new { url = "https://receiver.example.com/location" }, true),
        // The actions answer with what they made (a lead, an SMS, a check-in); no Location.
        ["POST /api/zapier/actions"] = ("/api/zapier/actions?type=create_lead", new { first_name = "Zap" }, false),
    };

    [Fact]
    public async Task Every_location_a_201_gives_answers_a_get_with_the_created_object()
    {
        var document = JsonNode.Parse(await fx.Client().GetStringAsync("/openapi.json"))!;
        var created = document["paths"]!.AsObject()
            .SelectMany(p => p.Value!.AsObject().Where(m => m.Value!["responses"]?["201"] is not null).Select(m => $"{m.Key.ToUpperInvariant()} {p.Key}"))
            .Order().ToList();
        var gym = await fx.CreateGymAsync();
        var other = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        using var stranger = other.Owner();
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Loc", user_id = "user_loc" })).AssertStatusAsync(HttpStatusCode.Created);
        // Plans need no member; memberships need a plan.
        var plan = await (await owner.PostJsonAsync("/api/gym/plans", new { name = "For memberships", price_cents = 100 })).AssertStatusAsync(HttpStatusCode.Created);
        var rows = Creates.ToDictionary();
        rows["POST /api/gym/memberships"] = ("/api/gym/memberships", new { user_id = "user_loc", plan_id = plan.GetProperty("id").GetString() }, true);
        // A new 201 operation needs a row above.
        Assert.Equal(created, rows.Keys.Order());

        foreach (var (operation, (path, body, expectLocation)) in rows)
        {
            var response = await owner.PostJsonAsync(path, body);
            var made = await response.AssertStatusAsync(HttpStatusCode.Created);
            var location = response.Headers.Location;
            Assert.True(expectLocation == (location is not null), $"{operation}: Location {location}");
            if (location is null)
            {
                continue;
            }
            Assert.False(location.IsAbsoluteUri, $"{operation}: {location}");
            var fetched = await (await owner.GetAsync(location)).AssertStatusAsync(HttpStatusCode.OK);
            Assert.Equal(made.GetProperty("id").GetString(), fetched.GetProperty("id").GetString());
            // The fetched object is the created one, less what is shown only once (a key's `key`, a webhook's `secret`).
            foreach (var property in fetched.EnumerateObject())
            {
                Assert.True(made.TryGetProperty(property.Name, out var value), $"{operation}: GET has '{property.Name}', the 201 did not");
                Assert.True(JsonElement.DeepEquals(value, property.Value), $"{operation}: '{property.Name}' {value} != {property.Value}");
            }
            await (await stranger.GetAsync(location)).AssertErrorAsync(HttpStatusCode.NotFound);
        }
    }

    [Fact]
    public async Task An_api_key_location_is_owner_only_like_the_collection_and_read_keys_get_the_others()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var response = await owner.PostJsonAsync("/api/gym/api-keys", new { name = "reader", scopes = new[] { "read" } });
        var key = await response.AssertStatusAsync(HttpStatusCode.Created);
        using var reader = fx.Client(key.GetProperty("key").GetString());
        await (await reader.GetAsync(response.Headers.Location)).AssertErrorAsync(HttpStatusCode.Forbidden);
        var fetched = await (await owner.GetAsync(response.Headers.Location)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.False(fetched.TryGetProperty("key", out _));

        var lead = await owner.PostJsonAsync("/api/gym/leads", new { first_name = "Read me" });
        await lead.AssertStatusAsync(HttpStatusCode.Created);
        var read = await (await reader.GetAsync(lead.Headers.Location)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("Read me", read.GetProperty("first_name").GetString());
        await (await owner.GetAsync($"/api/gym/leads/{Guid.NewGuid()}")).AssertErrorAsync(HttpStatusCode.NotFound);
    }
}
