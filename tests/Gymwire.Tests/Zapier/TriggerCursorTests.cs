using System.Net;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Features.Attendance;
using Gymwire.Features.Members;
using Gymwire.Features.Payments;
using Gymwire.Features.Zapier;
using Gymwire.Tests.Events;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Gymwire.Tests.Zapier;

/// <summary>
/// Lossless trigger polling: <c>limit</c> and <c>after_sequence</c> (docs/polling.md). More than 20 items between two
/// polls are all returned, each once, and an item whose transaction commits after a later one's is not passed over.
/// </summary>
public abstract class TriggerCursorTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : TriggerCursorTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : TriggerCursorTests(f), IClassFixture<PostgresGymwire>;

    private async Task<(TestGym Gym, HttpClient Client)> GymWithReadKeyAsync()
    {
        var gym = await fx.CreateGymAsync();
        var key = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "poller", scopes = new[] { "read" } })).AssertStatusAsync(HttpStatusCode.Created);
        return (gym, fx.Client(key.GetProperty("key").GetString()));
    }

    /// <summary>Adds members and their payments through the code the API uses (events included), one save each.</summary>
    private Task AddPaymentAsync(Guid gymId, string userId, int amountCents, DateTime at) =>
        fx.WithDbAsync(async db =>
        {
            PaymentService.AddPayment(db, new Payment
            {
                Id = Guid.CreateVersion7(at), GymId = gymId, UserId = userId, AmountCents = amountCents, Currency = "usd",
                Status = PaymentStatuses.Paid, CreatedAt = at, RecordedAt = at,
            });
            return await db.SaveChangesAsync();
        });

    private async Task<(List<JsonElement> Items, long Next)> PollAsync(HttpClient client, string type, long after, int? limit = null)
    {
        var response = await client.GetAsync($"/api/zapier/triggers?type={type}&after_sequence={after}" + (limit is null ? "" : $"&limit={limit}"));
        var body = await response.AssertStatusAsync(HttpStatusCode.OK);
        var next = long.Parse(response.Headers.GetValues(ZapierTriggers.NextAfterSequenceHeader).Single(), System.Globalization.CultureInfo.InvariantCulture);
        return (body.EnumerateArray().ToList(), next);
    }

    private async Task<List<JsonElement>> DrainAsync(HttpClient client, string type, long after, int limit)
    {
        var all = new List<JsonElement>();
        while (true)
        {
            var (items, next) = await PollAsync(client, type, after, limit);
            all.AddRange(items);
            if (items.Count == 0 && next == after)
            {
                return all;
            }
            Assert.Equal(items[^1].GetProperty("sequence").GetInt64(), next);
            after = next;
        }
    }

    [Fact]
    public async Task A_burst_of_150_payments_is_polled_completely_oldest_first_each_once()
    {
        var (gym, client) = await GymWithReadKeyAsync();
        var t0 = fx.Clock.GetUtcNow().UtcDateTime;
        // Billing day: the same timestamp for all of them, as a recurring run makes.
        await Task.WhenAll(Enumerable.Range(0, 150).Select(i => AddPaymentAsync(gym.GymId, $"user_{i:D3}", 1000 + i, t0)));

        // The documented default is unchanged: 20, newest first, exactly the documented fields.
        var latest = (await (await client.GetAsync("/api/zapier/triggers?type=new_payment")).AssertStatusAsync(HttpStatusCode.OK)).EnumerateArray().ToList();
        Assert.Equal(20, latest.Count);
        Assert.All(latest, p => Assert.Equal(["id", "user_id", "amount_cents", "status", "created_at"], p.EnumerateObject().Select(x => x.Name)));
        var larger = (await (await client.GetAsync("/api/zapier/triggers?type=new_payment&limit=100")).AssertStatusAsync(HttpStatusCode.OK)).EnumerateArray().ToList();
        Assert.Equal(100, larger.Count);
        Assert.Equal(latest.Select(p => p.GetProperty("id").GetGuid()), larger.Take(20).Select(p => p.GetProperty("id").GetGuid()));

        var all = await DrainAsync(client, "new_payment", 0, 40);
        Assert.Equal(150, all.Count);
        Assert.Equal(150, all.Select(p => p.GetProperty("id").GetGuid()).Distinct().Count());
        var sequences = all.Select(p => p.GetProperty("sequence").GetInt64()).ToList();
        Assert.Equal(sequences.Order(), sequences);
        Assert.All(all, p => Assert.Equal(["id", "user_id", "amount_cents", "status", "created_at", "sequence"], p.EnumerateObject().Select(x => x.Name)));
    }

    [Fact]
    public async Task Polling_while_writers_commit_concurrently_skips_nothing()
    {
        var (gym, client) = await GymWithReadKeyAsync();
        var t0 = fx.Clock.GetUtcNow().UtcDateTime;
        // Eight writers, each with timestamps running backwards: later commits carry earlier times. The poller polls
        // (a few items at a time) as writes land, within the triggers' rate limit of 60 a minute, then drains the rest.
        using var written = new SemaphoreSlim(0);
        var writers = Task.WhenAll(Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < 25; i++)
            {
                await AddPaymentAsync(gym.GymId, $"user_w{w}_{i:D2}", 100 * w + i, t0.AddMinutes(-i));
                written.Release();
            }
        })));
        var seen = new List<JsonElement>();
        long after = 0;
        for (var polls = 0; polls < 40 && !writers.IsCompleted; polls++)
        {
            await written.WaitAsync();
            var (items, next) = await PollAsync(client, "new_payment", after, 7);
            seen.AddRange(items);
            after = next;
        }
        await writers;
        seen.AddRange(await DrainAsync(client, "new_payment", after, 100));
        Assert.Equal(200, seen.Select(p => p.GetProperty("id").GetGuid()).Distinct().Count());
        Assert.Equal(200, seen.Count);
    }

    [Fact]
    public async Task Bad_limit_and_after_sequence_are_400_with_the_error_shape()
    {
        var (_, client) = await GymWithReadKeyAsync();
        foreach (var query in new[] { "limit=0", "limit=101", "limit=-5", "after_sequence=-1", "limit=abc", "after_sequence=x" })
        {
            var message = await (await client.GetAsync($"/api/zapier/triggers?type=new_member&{query}")).AssertErrorAsync(HttpStatusCode.BadRequest);
            Assert.False(string.IsNullOrWhiteSpace(message), query);
        }
    }

    [Fact]
    public async Task New_checkin_holds_kiosk_check_ins_and_new_member_keeps_members_who_left()
    {
        var (gym, client) = await GymWithReadKeyAsync();
        using var owner = gym.Owner();
        var member = await (await owner.PostJsonAsync("/api/gym/members", new { name = "Ada", user_id = "user_ada" })).AssertStatusAsync(HttpStatusCode.Created);
        var kiosk = await (await owner.PostJsonAsync("/api/gym/checkins", new { user_id = "user_ada" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("kiosk", kiosk.GetProperty("source").GetString());
        var writeKey = (await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "w", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("key").GetString();
        var logged = await (await fx.Client(writeKey).PostJsonAsync("/api/zapier/actions?type=log_attendance", new { user_id = "user_ada" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("api", logged.GetProperty("source").GetString());

        // new_checkin: the contract's "kiosk check-ins" only (docs/polling.md), in both modes; the API's check-in is in the event feed and GET /api/gym/checkins.
        var checkins = (await (await client.GetAsync("/api/zapier/triggers?type=new_checkin")).AssertStatusAsync(HttpStatusCode.OK)).EnumerateArray().ToList();
        Assert.Equal(kiosk.GetProperty("id").GetGuid(), Assert.Single(checkins).GetProperty("id").GetGuid());
        var (cursorCheckins, _) = await PollAsync(client, "new_checkin", 0);
        Assert.Equal(kiosk.GetProperty("id").GetGuid(), Assert.Single(cursorCheckins).GetProperty("id").GetGuid());
        var listed = await (await owner.GetAsync("/api/gym/checkins")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(2, listed.GetProperty("checkins").GetArrayLength());

        // new_member: a member who has since left stays in the trigger (joining is what it reports).
        await (await owner.DeleteAsync($"/api/gym/members/{member.GetProperty("id").GetGuid()}")).AssertStatusAsync(HttpStatusCode.OK);
        var members = (await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK)).EnumerateArray().ToList();
        Assert.Equal("user_ada", Assert.Single(members).GetProperty("user_id").GetString());
        var (cursorMembers, _) = await PollAsync(client, "new_member", 0);
        Assert.Equal("user_ada", Assert.Single(cursorMembers).GetProperty("user_id").GetString());
    }

    [Fact]
    public async Task A_poll_whose_events_hold_no_item_is_empty_with_the_header_moved_on_and_the_next_poll_finds_the_item()
    {
        var (gym, client) = await GymWithReadKeyAsync();
        using var owner = gym.Owner();
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Ada", user_id = "user_ada" })).AssertStatusAsync(HttpStatusCode.Created);
        var (_, start) = await PollAsync(client, "new_checkin", 0);
        var writeKey = (await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "w", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("key").GetString();
        using var writer = fx.Client(writeKey);
        for (var i = 0; i < 11; i++)
        {
            await (await writer.PostJsonAsync("/api/zapier/actions?type=log_attendance", new { user_id = "user_ada" })).AssertStatusAsync(HttpStatusCode.Created);
        }
        var kiosk = await (await owner.PostJsonAsync("/api/gym/checkins", new { user_id = "user_ada" })).AssertStatusAsync(HttpStatusCode.Created);

        // With limit 1 a poll reads at most ten check-in events, and the first eleven were logged through the API (no item).
        var (first, next) = await PollAsync(client, "new_checkin", start, 1);
        Assert.Empty(first);
        Assert.True(next > start, $"the header moved past the events read ({start} -> {next})");
        var (second, after) = await PollAsync(client, "new_checkin", next, 1);
        Assert.Equal(kiosk.GetProperty("id").GetGuid(), Assert.Single(second).GetProperty("id").GetGuid());
        var (third, end) = await PollAsync(client, "new_checkin", after, 1);
        Assert.Empty(third);
        Assert.Equal(after, end);
    }

    /// <summary>
    /// PostgreSQL numbers a row at INSERT: a transaction that took sequence n and commits after one that took n+1 would be
    /// passed over by a reader who saw n+1 first. A test trigger stalls the first transaction right after its outbox
    /// INSERT; the second must then not become visible before it (SQLite has one writer, so it cannot interleave there).
    /// </summary>
    [Fact]
    public async Task On_postgres_an_event_committed_late_with_a_lower_sequence_is_not_skipped()
    {
        if (fx.Store != Store.Postgres)
        {
            return;
        }
        var (gym, client) = await GymWithReadKeyAsync();
        using var owner = gym.Owner();
        var t0 = fx.Clock.GetUtcNow().UtcDateTime;
        await AddPaymentAsync(gym.GymId, "user_before", 1, t0);
        var (_, baseline) = await PollAsync(client, "new_payment", 0);
        var eventsBaseline = await LastEventSequenceAsync(owner);
        await using var stall = await OutboxStall.StartAsync(fx.ConnectionString, 424242, "user_late");
        var late = AddPaymentAsync(gym.GymId, "user_late", 2, t0.AddMinutes(-10));
        await stall.WaitForWaitersAsync(1);
        var early = AddPaymentAsync(gym.GymId, "user_early", 3, t0.AddMinutes(10));
        // Either the second save waits for the first (the fix), or it commits meanwhile (the defect).
        await Eventually.TrueAsync(async () => early.IsCompleted || await stall.WaitersAsync() >= 2, what: "the second save to commit or wait");

        var (during, next) = await PollAsync(client, "new_payment", baseline);
        var eventsDuring = await EventsAfterAsync(owner, eventsBaseline);

        await stall.ReleaseAsync();
        await Task.WhenAll(late, early);

        var (after, _) = await PollAsync(client, "new_payment", next);
        var users = during.Concat(after).Select(p => p.GetProperty("user_id").GetString()).ToList();
        Assert.Equal(["user_late", "user_early"], users);

        var eventsNext = eventsDuring.Count == 0 ? eventsBaseline : eventsDuring[^1].GetProperty("sequence").GetInt64();
        var eventUsers = eventsDuring.Concat(await EventsAfterAsync(owner, eventsNext))
            .Select(e => e.GetProperty("data").GetProperty("user_id").GetString()).ToList();
        Assert.Equal(["user_late", "user_early"], eventUsers);
    }

    private static async Task<long> LastEventSequenceAsync(HttpClient owner)
    {
        var events = await EventsAfterAsync(owner, 0);
        return events.Count == 0 ? 0 : events[^1].GetProperty("sequence").GetInt64();
    }

    private static async Task<List<JsonElement>> EventsAfterAsync(HttpClient owner, long after) =>
        (await (await owner.GetAsync($"/api/gym/events?after_sequence={after}&limit=200")).AssertStatusAsync(HttpStatusCode.OK))
            .GetProperty("events").EnumerateArray().ToList();
}
