using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;

namespace Gymwire.Tests.Foundation;

/// <summary>
/// <c>Idempotency-Key</c> on every create under <c>/api/gym/</c>, with the Zapier actions' semantics: a retry answers
/// the first response and creates nothing, a different body is 409, keys expire after 24 hours, and parallel duplicates
/// create one record.
/// </summary>
public abstract class IdempotentCreateTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : IdempotentCreateTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : IdempotentCreateTests(f), IClassFixture<PostgresGymwire>;

    private static HttpRequestMessage Post(string url, string key, object body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = JsonContent.Create(body) };
        request.Headers.Add("Idempotency-Key", key);
        return request;
    }

    private Task<int> CountAsync(Guid gymId, string table) =>
        fx.WithDbAsync(db => table switch
        {
            "members" => db.Members.CountAsync(x => x.GymId == gymId),
            "plans" => db.MembershipPlans.CountAsync(x => x.GymId == gymId),
            "memberships" => db.Memberships.CountAsync(x => x.GymId == gymId),
            "payments" => db.Payments.CountAsync(x => x.GymId == gymId),
            "sessions" => db.TrainingSessions.CountAsync(x => x.GymId == gymId),
            "checkins" => db.Attendance.CountAsync(x => x.GymId == gymId),
            "classes" => db.ClassSchedules.CountAsync(x => x.GymId == gymId),
            "leads" => db.Leads.CountAsync(x => x.GymId == gymId),
            "contracts" => db.Contracts.CountAsync(x => x.GymId == gymId),
            _ => db.OutboxEvents.CountAsync(x => x.GymId == gymId),
        });

    /// <summary>Create, retry (replayed), and reuse the key with another body (409), on one endpoint.</summary>
    private async Task<JsonElement> AssertIdempotentAsync(HttpClient client, Guid gymId, string resource, object body, object other)
    {
        var url = $"/api/gym/{resource}";
        var key = $"key-{resource}";
        var first = await client.SendAsync(Post(url, key, body));
        var created = await first.AssertStatusAsync(HttpStatusCode.Created);
        var count = await CountAsync(gymId, resource);
        var events = await CountAsync(gymId, "events");

        var retry = await client.SendAsync(Post(url, key, body));
        var replayed = await retry.AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal(created.GetRawText(), replayed.GetRawText());
        Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(first.Headers.Location, retry.Headers.Location);
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));

        var message = await (await client.SendAsync(Post(url, key, other))).AssertErrorAsync(HttpStatusCode.Conflict);
        Assert.Contains("Idempotency-Key", message, StringComparison.Ordinal);
        Assert.Equal(count, await CountAsync(gymId, resource));
        Assert.Equal(events, await CountAsync(gymId, "events"));
        return created;
    }

    [Fact]
    public async Task Members_plans_memberships_payments_and_leads_replay_a_retry_and_refuse_a_changed_body()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        await AssertIdempotentAsync(owner, gym.GymId, "members", new { name = "Ann", user_id = "user_ann" }, new { name = "Bob", user_id = "user_bob" });
        var plan = await AssertIdempotentAsync(owner, gym.GymId, "plans", new { name = "Monthly", price_cents = 9900 }, new { name = "Yearly", price_cents = 99000 });
        var planId = plan.GetProperty("id").GetGuid();
        await AssertIdempotentAsync(owner, gym.GymId, "memberships", new { user_id = "user_ann", plan_id = planId }, new { user_id = "user_ann", plan_id = Guid.NewGuid() });
        await AssertIdempotentAsync(owner, gym.GymId, "payments", new { user_id = "user_ann", amount_cents = 9900 }, new { user_id = "user_ann", amount_cents = 100 });
        await AssertIdempotentAsync(owner, gym.GymId, "leads", new { first_name = "Lee" }, new { first_name = "Lou" });
    }

    [Fact]
    public async Task Sessions_checkins_classes_and_contracts_replay_a_retry_and_refuse_a_changed_body()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Ann", user_id = "user_ann" })).AssertStatusAsync(HttpStatusCode.Created);
        await AssertIdempotentAsync(owner, gym.GymId, "sessions", new { user_id = "user_ann", session_type = "gi", date = "2026-04-16", duration_mins = 60 },
            new { user_id = "user_ann", session_type = "gi", date = "2026-04-16", duration_mins = 90 });
        await AssertIdempotentAsync(owner, gym.GymId, "checkins", new { user_id = "user_ann" }, new { user_id = "user_ann", status = "pending" });
        await AssertIdempotentAsync(owner, gym.GymId, "classes", new { title = "No-Gi", discipline = "no-gi", day_of_week = 2, start_time = "18:00" },
            new { title = "Gi", discipline = "gi", day_of_week = 3, start_time = "18:00" });
        await AssertIdempotentAsync(owner, gym.GymId, "contracts", new { user_id = "user_ann", title = "Agreement" }, new { user_id = "user_ann", title = "Other" });
    }

    [Fact]
    public async Task Parallel_duplicates_create_one_record_and_all_answer_with_it()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var logStart = fx.Logs.Lines.Count;
        var racers = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => owner.SendAsync(Post("/api/gym/leads", "race-lead", new { first_name = "Race" }))));
        var ids = new HashSet<Guid>();
        foreach (var response in racers)
        {
            ids.Add((await response.AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid());
        }
        Assert.Single(ids);
        Assert.Equal(1, await CountAsync(gym.GymId, "leads"));
        Assert.Equal(1, await CountAsync(gym.GymId, "events"));

        // A create with side effects beyond its row (a member: a unique user_id, an event) races the same way.
        racers = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => owner.SendAsync(Post("/api/gym/members", "race-member", new { name = "Racer" }))));
        ids.Clear();
        foreach (var response in racers)
        {
            ids.Add((await response.AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid());
        }
        Assert.Single(ids);
        Assert.Equal(1, await CountAsync(gym.GymId, "members"));
        Assert.Equal(2, await CountAsync(gym.GymId, "events"));
        Assert.Equal(2, await fx.WithDbAsync(db => db.IdempotencyRecords.CountAsync(r => r.GymId == gym.GymId)));

        // Without a key, the same user_id twice at once: the unique index decides, and the losers get 409.
        racers = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => owner.PostJsonAsync("/api/gym/members", new { name = "Twin", user_id = "user_twin" })));
        Assert.Equal([HttpStatusCode.Created], racers.Select(r => r.StatusCode).Where(s => s != HttpStatusCode.Conflict));
        Assert.Equal(1, await fx.WithDbAsync(db => db.Members.CountAsync(m => m.GymId == gym.GymId && m.UserId == "user_twin")));

        // Lost races are the clients' duplicates, handled: nothing of them is logged as a server error.
        fx.Logs.AssertNoErrorsSince(logStart);
    }

    [Fact]
    public async Task A_failed_create_leaves_the_key_unused_keys_are_per_gym_and_expire_after_24_hours()
    {
        var gym = await fx.CreateGymAsync();
        // An API key (owner sessions would expire when the clock moves a day on).
        var key = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "w", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        using var owner = fx.Client(key.GetProperty("key").GetString());
        // 400 and 404 store nothing: the corrected request with the same key goes through.
        await (await owner.SendAsync(Post("/api/gym/leads", "fix-me", new { last_name = "NoFirst" }))).AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await owner.SendAsync(Post("/api/gym/checkins", "fix-me-too", new { user_id = "user_nobody" }))).AssertErrorAsync(HttpStatusCode.NotFound);
        var lead = await (await owner.SendAsync(Post("/api/gym/leads", "fix-me", new { first_name = "Fixed" }))).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal(0, await fx.WithDbAsync(db => db.IdempotencyRecords.CountAsync(r => r.GymId == gym.GymId && r.Key == "fix-me-too")));

        var other = await fx.CreateGymAsync();
        await (await other.Owner().SendAsync(Post("/api/gym/leads", "fix-me", new { first_name = "Fixed" }))).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal(1, await CountAsync(gym.GymId, "leads"));

        fx.Clock.Advance(TimeSpan.FromHours(24) + TimeSpan.FromMinutes(1));
        var again = await (await owner.SendAsync(Post("/api/gym/leads", "fix-me", new { first_name = "Fixed" }))).AssertStatusAsync(HttpStatusCode.Created);
        Assert.NotEqual(lead.GetProperty("id").GetGuid(), again.GetProperty("id").GetGuid());

        await (await owner.SendAsync(Post("/api/gym/leads", new string('k', 256), new { first_name = "X" }))).AssertErrorAsync(HttpStatusCode.BadRequest);
        // Without the header nothing changes: two creates.
        await (await owner.PostJsonAsync("/api/gym/leads", new { first_name = "Plain" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/leads", new { first_name = "Plain" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal(4, await CountAsync(gym.GymId, "leads"));
    }

    [Fact]
    public async Task Records_past_24_hours_are_deleted_by_the_retention_run_and_younger_ones_kept()
    {
        var gym = await fx.CreateGymAsync();
        var key = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "r", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        using var client = fx.Client(key.GetProperty("key").GetString());
        await (await client.SendAsync(Post("/api/gym/leads", "day-old", new { first_name = "Old" }))).AssertStatusAsync(HttpStatusCode.Created);
        fx.Clock.Advance(TimeSpan.FromHours(23));
        await (await client.SendAsync(Post("/api/gym/leads", "hour-old", new { first_name = "Young" }))).AssertStatusAsync(HttpStatusCode.Created);
        fx.Clock.Advance(TimeSpan.FromHours(1) + TimeSpan.FromMinutes(1));

        // Advancing the clock may already have run the hourly loop; either way the expired record is gone after this.
        await fx.Services.GetServices<IHostedService>().OfType<WebhookRetention>().Single().PurgeIdempotencyRecordsAsync(CancellationToken.None);

        Assert.Equal(["hour-old"], await fx.WithDbAsync(db => db.IdempotencyRecords.Where(r => r.GymId == gym.GymId).Select(r => r.Key).ToListAsync()));
    }
}
