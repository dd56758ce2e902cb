using System.Collections.Concurrent;
using Gymwire.Data;
using Gymwire.Features.Events;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gymwire.Tests.Webhooks;

/// <summary><see cref="WebhookFixture"/> with its real queue wrapped in <see cref="WrappedQueue"/>.</summary>
public abstract class WrappedQueueFixture(Store store) : WebhookFixture(store)
{
    public WrappedQueue Queue => (WrappedQueue)Services.GetRequiredService<IDeliveryQueue>();

    /// <summary>Attempts are measured by subscription, so that a test can tell when its own attempt has ended.</summary>
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [.. base.Settings(), new("Metrics:PerSubscription", "true")];

    /// <summary>
    /// A fan-out waits for its hand-over's sends as long as a test may take: a way out of the worker that forgot to tell
    /// it would hold the fan-out's commit, and the test would fail instead of passing on the real-time bound.
    /// </summary>
    protected override void ConfigureServices(IServiceCollection services)
    {
        services.Replace(ServiceDescriptor.Singleton<IDeliveryQueue>(sp => new WrappedQueue(DeliveryQueue.ForConfiguredStore(sp))));
        services.PostConfigure<WebhookOptions>(o => o.HandOverSendsWait = TimeSpan.FromMinutes(5));
    }
}

public sealed class SqliteWrappedQueue() : WrappedQueueFixture(Store.Sqlite);

public sealed class PostgresWrappedQueue() : WrappedQueueFixture(Store.Postgres);

/// <summary>
/// The real queue, watched: it records every delivery a claim returned, runs <see cref="AfterFanOut"/> after an
/// enqueue's fan-out and before its insert and commit (inside its transaction on PostgreSQL; an exception it throws
/// fails the enqueue, which writes nothing), <see cref="OnClaimNew"/> when the fan-out claims a new delivery, <see cref="OnComplete"/> before attempts are
/// recorded, and <see cref="BeforeClaim"/> once, when the
/// next claim starts (an exception it throws is that claim's). Claiming the probe of <see cref="FailProbeOf"/> fails once,
/// as a dropped connection would.
/// </summary>
public sealed class WrappedQueue(IDeliveryQueue queue) : IDeliveryQueue
{
    private int _failed;

    public Guid? FailProbeOf { get; set; }

    public bool Failed => Volatile.Read(ref _failed) == 1;

    /// <summary>Every delivery a claim (<see cref="ClaimAsync"/>) has returned.</summary>
    public ConcurrentQueue<Guid> Claimed { get; } = new();

    /// <summary>Runs with the events the enqueue fans out.</summary>
    public Func<IReadOnlyList<OutboxEvent>, Task>? AfterFanOut { get; set; }

    public Action? OnClaimNew { get; set; }

    /// <summary>Runs with each batch of attempts the recorder writes, before it is written.</summary>
    public Action<IReadOnlyList<AttemptRecord>>? OnComplete { get; set; }

    private Action? _beforeClaim;

    public Action? BeforeClaim
    {
        get => Volatile.Read(ref _beforeClaim);
        set => Volatile.Write(ref _beforeClaim, value);
    }

    public Task<DateTime?> ClaimProbeAsync(Guid subscriptionId, CancellationToken ct) =>
        subscriptionId == FailProbeOf && Interlocked.Exchange(ref _failed, 1) == 0
            ? throw new InvalidOperationException("The connection was lost (a test's injected failure)")
            : queue.ClaimProbeAsync(subscriptionId, ct);

    public int RecordWriters => queue.RecordWriters;

    public Task<(int Events, int Deliveries)> EnqueueAsync(int maxEvents, FanOut fanOut, CancellationToken ct) =>
        queue.EnqueueAsync(maxEvents, async (db, events, token) =>
        {
            var fanned = await fanOut(db, events, token);
            if (AfterFanOut is { } after)
            {
                await after(events);
            }
            return fanned;
        }, ct);

    public void ClaimNew(WebhookDelivery delivery)
    {
        queue.ClaimNew(delivery);
        OnClaimNew?.Invoke();
    }

    public async Task<IReadOnlyList<ClaimedDelivery>> ClaimAsync(int limit, Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct)
    {
        if (Interlocked.Exchange(ref _beforeClaim, null) is { } before)
        {
            before();
        }
        var claimed = await queue.ClaimAsync(limit, skipSubscriptions, skipDeliveries, ct);
        foreach (var delivery in claimed)
        {
            Claimed.Enqueue(delivery.Id);
        }
        return claimed;
    }

    public Task ReleaseAsync(IReadOnlyCollection<ClaimedDelivery> deliveries, CancellationToken ct) => queue.ReleaseAsync(deliveries, ct);

    public Task<int> ReleaseClaimsOfAsync(Guid node, CancellationToken ct) => queue.ReleaseClaimsOfAsync(node, ct);

    public Task<int> ReleaseLeftoverClaimsAsync(CancellationToken ct) => queue.ReleaseLeftoverClaimsAsync(ct);

    public Task<RecordedBatch> CompleteAsync(IReadOnlyList<AttemptRecord> records, DecideOutcome decide, CancellationToken ct)
    {
        OnComplete?.Invoke(records);
        return queue.CompleteAsync(records, decide, ct);
    }

    public Task<DateTime?> NextDueAsync(Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct) => queue.NextDueAsync(skipSubscriptions, skipDeliveries, ct);

    public Task<QueueDepth> DepthAsync(CancellationToken ct) => queue.DepthAsync(ct);

    public Task<ClaimedDelivery?> ReadUnfinishedAsync(Guid deliveryId, CancellationToken ct) => queue.ReadUnfinishedAsync(deliveryId, ct);

    public Task<int> HoldAsync(GymwireDbContext db, Guid gymId, Guid subscriptionId, CancellationToken ct) => queue.HoldAsync(db, gymId, subscriptionId, ct);

    public Task<int> ResumeAsync(GymwireDbContext db, Guid gymId, Guid subscriptionId, CancellationToken ct) => queue.ResumeAsync(db, gymId, subscriptionId, ct);

    public Task<int> RedeliverAsync(GymwireDbContext db, Guid gymId, Guid subscriptionId, Guid? deliveryId, DateTime createdSince, string[] statuses, DateTime due, CancellationToken ct) =>
        queue.RedeliverAsync(db, gymId, subscriptionId, deliveryId, createdSince, statuses, due, ct);
}
