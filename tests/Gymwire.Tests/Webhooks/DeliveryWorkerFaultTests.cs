using Gymwire.Data;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The worker when a queue call fails part way through a claim: what it already started still runs, and what it had not
/// started goes back to the queue at once. The real queue is wrapped so that one call fails, as a dropped connection would.
/// </summary>
public abstract class DeliveryWorkerFaultTests(ProbeFaultFixture fx)
{
    public sealed class Sqlite(SqliteProbeFaults f) : DeliveryWorkerFaultTests(f), IClassFixture<SqliteProbeFaults>;
    public sealed class Postgres(PostgresProbeFaults f) : DeliveryWorkerFaultTests(f), IClassFixture<PostgresProbeFaults>;

    [Fact]
    public async Task A_failed_probe_claim_does_not_stop_the_probe_already_won_in_the_same_claim()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var first = await gym.CreateWebhookAsync(receiver.Url("/first"), "member.joined");
        var second = await gym.CreateWebhookAsync(receiver.Url("/second"), "member.joined");
        // Both endpoints failing, paused until 1 s and 2 s from now: the event's deliveries wait for those ends, in that order.
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        foreach (var (hook, pause) in new[] { (first, 1), (second, 2) })
        {
            await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook.Id).ExecuteUpdateAsync(u => u
                .SetProperty(s => s.ConsecutiveFailures, 5).SetProperty(s => s.PauseLength, TimeSpan.FromSeconds(1))
                .SetProperty(s => s.PausedUntil, now.AddSeconds(pause)).SetProperty(s => s.FailingSince, now)));
        }
        await gym.AddMemberAsync("user_probe_fault");
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(second.Id)).Count == 1, what: "the event fanned out");

        // Both pauses over: one claim takes both deliveries; the first endpoint's probe is won, then the second's claim fails.
        fx.Queue.FailProbeOf = second.Id;
        fx.AdvanceAndWake(TimeSpan.FromSeconds(2));
        await receiver.WaitForAsync("/first", 1);
        Assert.True(fx.Queue.Failed);

        // The second endpoint's delivery was given back, and its probe goes on the worker's next pass.
        fx.WakeWorker();
        await receiver.WaitForAsync("/second", 1);
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(first.Id)).Concat(await fx.DeliveriesAsync(second.Id)).All(d => d.Status == DeliveryStatus.Delivered),
            what: "both delivered");
        Assert.Single(receiver.At("/first"));
        Assert.Single(receiver.At("/second"));
    }
}

/// <summary><see cref="WebhookFixture"/> with its queue wrapped in <see cref="ProbeFaultQueue"/>.</summary>
public abstract class ProbeFaultFixture(Store store) : WebhookFixture(store)
{
    public ProbeFaultQueue Queue => (ProbeFaultQueue)Services.GetRequiredService<IDeliveryQueue>();

    protected override void ConfigureServices(IServiceCollection services) =>
        services.Replace(ServiceDescriptor.Singleton<IDeliveryQueue>(sp => new ProbeFaultQueue(DeliveryQueue.ForConfiguredStore(sp))));
}

public sealed class SqliteProbeFaults() : ProbeFaultFixture(Store.Sqlite);

public sealed class PostgresProbeFaults() : ProbeFaultFixture(Store.Postgres);

/// <summary>The real queue, except that claiming the probe of <see cref="FailProbeOf"/> fails once.</summary>
public sealed class ProbeFaultQueue(IDeliveryQueue queue) : IDeliveryQueue
{
    private int _failed;

    public Guid? FailProbeOf { get; set; }

    public bool Failed => Volatile.Read(ref _failed) == 1;

    public Task<DateTime?> ClaimProbeAsync(Guid subscriptionId, CancellationToken ct) =>
        subscriptionId == FailProbeOf && Interlocked.Exchange(ref _failed, 1) == 0
            ? throw new InvalidOperationException("The connection was lost (a test's injected failure)")
            : queue.ClaimProbeAsync(subscriptionId, ct);

    public int RecordWriters => queue.RecordWriters;

    public Task<(int Events, int Deliveries)> EnqueueAsync(int maxEvents, FanOut fanOut, CancellationToken ct) => queue.EnqueueAsync(maxEvents, fanOut, ct);

    public Task<IReadOnlyList<ClaimedDelivery>> ClaimAsync(int limit, Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct) =>
        queue.ClaimAsync(limit, skipSubscriptions, skipDeliveries, ct);

    public Task ReleaseAsync(IReadOnlyCollection<ClaimedDelivery> deliveries, CancellationToken ct) => queue.ReleaseAsync(deliveries, ct);

    public Task<int> ReleaseClaimsOfAsync(Guid node, CancellationToken ct) => queue.ReleaseClaimsOfAsync(node, ct);

    public Task<int> ReleaseLeftoverClaimsAsync(CancellationToken ct) => queue.ReleaseLeftoverClaimsAsync(ct);

    public Task<RecordedBatch> CompleteAsync(IReadOnlyList<AttemptRecord> records, DecideOutcome decide, CancellationToken ct) => queue.CompleteAsync(records, decide, ct);

    public Task<DateTime?> NextDueAsync(Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct) => queue.NextDueAsync(skipSubscriptions, skipDeliveries, ct);

    public Task<QueueDepth> DepthAsync(CancellationToken ct) => queue.DepthAsync(ct);

    public Task<ClaimedDelivery?> ReadUnfinishedAsync(Guid deliveryId, CancellationToken ct) => queue.ReadUnfinishedAsync(deliveryId, ct);

    public Task<int> HoldAsync(GymwireDbContext db, Guid gymId, Guid subscriptionId, CancellationToken ct) => queue.HoldAsync(db, gymId, subscriptionId, ct);

    public Task<int> ResumeAsync(GymwireDbContext db, Guid gymId, Guid subscriptionId, CancellationToken ct) => queue.ResumeAsync(db, gymId, subscriptionId, ct);

    public Task<int> RedeliverAsync(GymwireDbContext db, Guid gymId, Guid subscriptionId, Guid? deliveryId, DateTime createdSince, string[] statuses, DateTime due, CancellationToken ct) =>
        queue.RedeliverAsync(db, gymId, subscriptionId, deliveryId, createdSince, statuses, due, ct);
}
