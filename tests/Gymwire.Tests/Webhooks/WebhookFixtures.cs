using System.Globalization;
using System.Net;
using System.Text.Json;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// Gymwire allowed to deliver to loopback over plain HTTP (the test receiver), with no retry jitter and a per-attempt
/// timeout (<c>Webhooks:Timeout</c>, real time) of 10 s unless the fixture asks for another. A loaded CI machine can
/// take seconds to answer from a local receiver, and a timed-out attempt's retry waits on the fake clock, which most
/// tests never move: only fixtures for tests of hanging, trickling or slow receivers pass <see cref="ShortTimeout"/>.
/// </summary>
public abstract class WebhookFixture(Store store, TimeSpan? timeout = null) : GymwireFixture(store)
{
    /// <summary>For tests whose receivers hang or trickle: their attempts time out in seconds and count as slow.</summary>
    public static TimeSpan ShortTimeout { get; } = TimeSpan.FromSeconds(2);

    /// <summary>This fixture's <c>Webhooks:Timeout</c>; the claim lease (twice it plus 30 s) follows it.</summary>
    public TimeSpan DeliveryTimeout { get; } = timeout ?? TimeSpan.FromSeconds(10);

    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        new("Webhooks:AllowHttp", "true"),
        new("Webhooks:AllowedNetworks:0", "127.0.0.0/8"),
        new("Webhooks:RetryJitter", "0"),
        new("Webhooks:Timeout", DeliveryTimeout.ToString("c", CultureInfo.InvariantCulture)),
    ];
}

public sealed class SqliteWebhooks() : WebhookFixture(Store.Sqlite);

public sealed class PostgresWebhooks() : WebhookFixture(Store.Postgres);

/// <summary>
/// <see cref="WebhookFixture"/> with the <see cref="WebhookFixture.ShortTimeout"/>, for the delivery and hostile-receiver
/// tests: receivers that never answer or trickle must fail by the timeout within a test's wait, and an attempt that
/// times out must count as slow for the one-attempt-at-a-time cap.
/// </summary>
public sealed class SqliteShortTimeout() : WebhookFixture(Store.Sqlite, ShortTimeout);

public sealed class PostgresShortTimeout() : WebhookFixture(Store.Postgres, ShortTimeout);

/// <summary>
/// <see cref="WebhookFixture"/> with failing endpoints never paused (<c>Webhooks:FailingEndpointThreshold</c> 0), for the
/// pipeline tests: they drive bursts of failures and timeouts at endpoints to exercise claiming, recording and the
/// slow-endpoint cap, and claim by hand from a queue they expect to hold only their own due work. Pausing is tested
/// in <see cref="WebhookDeliveryTests"/>.
/// </summary>
public abstract class PipelineFixture(Store store, TimeSpan? timeout = null) : WebhookFixture(store, timeout)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [.. base.Settings(), new("Webhooks:FailingEndpointThreshold", "0")];
}

/// <summary>The pipeline fixture with the <see cref="WebhookFixture.ShortTimeout"/>: a pipeline test times out attempts to a hanging endpoint.</summary>
public sealed class SqlitePipeline() : PipelineFixture(Store.Sqlite, ShortTimeout);

public sealed class PostgresPipeline() : PipelineFixture(Store.Postgres, ShortTimeout);

/// <summary>Gymwire with the default egress policy: HTTPS only, no private or reserved networks.</summary>
public sealed class SqliteEgress() : GymwireFixture(Store.Sqlite);

public sealed class PostgresEgress() : GymwireFixture(Store.Postgres);

public sealed record CreatedHook(Guid Id, string Secret);

public static class WebhookTestHelpers
{
    /// <summary>
    /// PostgreSQL: until a session of the fixture's database waits for a lock in a statement that contains
    /// <paramref name="statement"/>; fails at once if <paramref name="request"/>, which should be the one waiting, ends first.
    /// Read outside any test transaction: PostgreSQL keeps one snapshot of pg_stat_activity per transaction.
    /// </summary>
    public static async Task WaitForLockWaitAsync(this GymwireFixture fx, string statement, Task? request = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await fx.WithDbAsync(db => db.Database.SqlQuery<int>($"""
            SELECT count(*)::int AS "Value" FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE {"%" + statement + "%"}
            """).SingleAsync()) == 0)
        {
            Assert.False(request?.IsCompleted == true, $"the request did not wait for a lock ({statement})");
            Assert.True(DateTime.UtcNow < deadline, $"no statement like '{statement}' ever waited for a lock");
            await Task.Delay(20);
        }
    }

    public static async Task<CreatedHook> CreateWebhookAsync(this TestGym gym, string url, params string[] events)
    {
        using var owner = gym.Owner();
        var body = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url, events })).AssertStatusAsync(HttpStatusCode.Created);
        return new CreatedHook(body.GetProperty("id").GetGuid(), body.GetProperty("secret").GetString()!);
    }

    /// <summary>Wakes the delivery worker (as a local write would), after the test moved the clock.</summary>
    public static void WakeWorker(this GymwireFixture fx) => fx.Services.GetRequiredService<DeliverySignal>().Notify();

    public static void AdvanceAndWake(this GymwireFixture fx, TimeSpan by)
    {
        fx.Clock.Advance(by);
        fx.WakeWorker();
    }

    /// <summary>The delivery queue, to claim and give back by hand.</summary>
    public static IDeliveryQueue Queue(this GymwireFixture fx) => fx.Services.GetRequiredService<IDeliveryQueue>();

    /// <summary>Attempts a claimed delivery and records it, as the worker does, and returns the recorded outcome.</summary>
    public static async Task<AttemptOutcome?> AttemptAsync(this GymwireFixture fx, ClaimedDelivery delivery) =>
        await fx.Services.GetRequiredService<AttemptRecorder>().RecordAsync(
            await fx.Services.GetRequiredService<Attempt>().SendAsync(delivery, CancellationToken.None));

    public static Task<List<WebhookDelivery>> DeliveriesAsync(this GymwireFixture fx, Guid subscriptionId) =>
        fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => d.SubscriptionId == subscriptionId).OrderBy(d => d.CreatedAt).ThenBy(d => d.Id).ToListAsync());

    public static Task<List<WebhookAttempt>> AttemptsAsync(this GymwireFixture fx, Guid deliveryId) =>
        fx.WithDbAsync(db => db.WebhookAttempts.AsNoTracking().Where(a => a.DeliveryId == deliveryId).OrderBy(a => a.Number).ToListAsync());

    /// <summary>Waits (bounded) until the subscription's only delivery satisfies <paramref name="condition"/>.</summary>
    public static async Task<WebhookDelivery> WaitForDeliveryAsync(this GymwireFixture fx, Guid subscriptionId, Func<WebhookDelivery, bool> condition, string what)
    {
        WebhookDelivery? found = null;
        await Eventually.TrueAsync(async () => (found = (await fx.DeliveriesAsync(subscriptionId)).FirstOrDefault(condition)) is not null, what: what);
        return found!;
    }

    /// <summary>
    /// Waits (bounded) until the subscription has <paramref name="count"/> deliveries, all satisfying
    /// <paramref name="condition"/>, and returns them. A receiver can get a fresh delivery a moment before its row is
    /// committed (the worker sends while the fan-out commits), so a test that reads the rows after the requests arrived
    /// waits for every one of them.
    /// </summary>
    public static async Task<List<WebhookDelivery>> WaitForDeliveriesAsync(this GymwireFixture fx, Guid subscriptionId, int count, Func<WebhookDelivery, bool> condition, string what)
    {
        List<WebhookDelivery> found = [];
        await Eventually.TrueAsync(async () => (found = await fx.DeliveriesAsync(subscriptionId)).Count >= count && found.All(condition), what: what);
        Assert.Equal(count, found.Count);
        return found;
    }

    public static async Task<HttpStatusCode> AddMemberAsync(this TestGym gym, string userId)
    {
        using var owner = gym.Owner();
        var response = await owner.PostJsonAsync("/api/gym/members", new { name = "Member " + userId, user_id = userId });
        return response.StatusCode;
    }

    public static JsonElement Json(this ReceivedRequest request) => JsonDocument.Parse(request.Body).RootElement.Clone();
}

/// <summary>The bulk writes' rows per statement that the store's own queue uses, for tests that call <see cref="DeliveryRows"/> directly.</summary>
public static class TestDeliveryRows
{
    public static int PerStatement(Gymwire.Data.GymwireDbContext db) =>
        db.Provider == Gymwire.Data.DatabaseProvider.Postgres ? PostgresDeliveryQueue.StatementRows : SqliteDeliveryQueue.StatementRows;
}
