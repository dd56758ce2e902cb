using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The worker when a queue call fails part way through a claim: what it already started still runs, and what it had not
/// started goes back to the queue at once. The real queue is wrapped so that one call fails, as a dropped connection
/// or a deadlock would.
/// </summary>
public abstract class DeliveryWorkerFaultTests(WrappedQueueFixture fx)
{
    public sealed class Sqlite(SqliteWrappedQueue f) : DeliveryWorkerFaultTests(f), IClassFixture<SqliteWrappedQueue>;
    public sealed class Postgres(PostgresWrappedQueue f) : DeliveryWorkerFaultTests(f), IClassFixture<PostgresWrappedQueue>;

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

    [Fact]
    public async Task A_claim_rolled_back_to_break_a_deadlock_is_a_warning_and_claimed_again_at_once()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/deadlock", attempt => attempt == 1 ? new Reply(500) : new Reply());
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/deadlock"), "member.joined");
        await gym.AddMemberAsync("user_claim_conflict");
        var retrying = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Retrying, "the first attempt failed");
        var logStart = fx.Logs.Lines.Count;

        // The first claim once the retry is due is rolled back, as PostgreSQL rolls back a deadlock's victim.
        Action? rollBack = null;
        rollBack = () =>
        {
            if (fx.Clock.GetUtcNow().UtcDateTime < retrying.NextAttemptAt)
            {
                fx.Queue.BeforeClaim = rollBack;
                return;
            }
            throw new PostgresException("deadlock detected", "ERROR", "ERROR", PostgresErrorCodes.DeadlockDetected);
        };
        fx.Queue.BeforeClaim = rollBack;
        // One wake-up and the clock standing still after it: a worker that waited for its poll interval would not claim again.
        fx.AdvanceAndWake(retrying.NextAttemptAt!.Value - fx.Clock.GetUtcNow().UtcDateTime);

        await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "the retry delivered");
        Assert.Equal(2, receiver.At("/deadlock").Count);
        fx.Logs.AssertNoErrorsSince(logStart);
        Assert.Contains(fx.Logs.Lines.Skip(logStart), l => l.StartsWith("Warning Gymwire.Features.Webhooks.DeliveryWorker: A webhook delivery worker's write was rolled back", StringComparison.Ordinal));
    }
}
