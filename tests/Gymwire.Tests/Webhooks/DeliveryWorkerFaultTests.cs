using System.Diagnostics.Metrics;
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

    [Fact]
    public async Task A_delivery_sent_before_its_fan_out_was_rolled_back_is_sent_again_once_under_the_same_id_and_recorded_once()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/early"), "member.joined");
        var logStart = fx.Logs.Lines.Count;
        // The receiver has the delivery before its fan-out commits; then PostgreSQL rolls the fan-out back, as it rolls
        // back a deadlock's victim, and does so twice more as the dispatcher runs it again at once.
        var rolledBack = 0;
        fx.Queue.AfterFanOut = async events =>
        {
            if (!events.Any(e => e.GymId == gym.GymId))
            {
                return;
            }
            var pass = Interlocked.Increment(ref rolledBack);
            if (pass == 1)
            {
                await receiver.WaitForAsync("/early", 1);
            }
            if (pass <= 3)
            {
                throw new PostgresException("deadlock detected", "ERROR", "ERROR", PostgresErrorCodes.DeadlockDetected);
            }
        };
        try
        {
            await gym.AddMemberAsync("user_early_send");

            var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");
            // Sent before the first rollback, and once more after the commit: the passes after a failed one hand over
            // only once committed, so the rollbacks between send nothing.
            var received = await receiver.WaitForAsync("/early", 2);
            Assert.Equal(2, received.Count);
            Assert.Equal(4, rolledBack);
            Assert.All(received, r => Assert.Equal(delivery.Id.ToString(), r.Header("webhook-id")));
            Assert.Equal(1, delivery.AttemptCount);
            Assert.Single(await fx.AttemptsAsync(delivery.Id));
            Assert.Single(await fx.DeliveriesAsync(hook.Id));
            fx.Logs.AssertNoErrorsSince(logStart);
            var lines = fx.Logs.Lines.Skip(logStart).ToList();
            Assert.Contains(lines, l => l.StartsWith("Warning Gymwire.Features.Webhooks.WebhookDispatcher: Webhook dispatch was rolled back", StringComparison.Ordinal));
            await Eventually.TrueAsync(() => Task.FromResult(fx.Logs.Lines.Skip(logStart).Any(l => l.StartsWith(
                $"Debug Gymwire.Features.Webhooks.DeliveryWorker: Webhook delivery {delivery.Id} is dropped: its fan-out was rolled back", StringComparison.Ordinal))),
                what: "the first attempt dropped");
        }
        finally
        {
            fx.Queue.AfterFanOut = null;
        }
    }

    [Fact]
    public async Task An_attempt_answered_before_its_fan_out_commits_is_recorded_once_it_commits()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/answered-early"), "member.joined");
        // The fan-out commits only after the attempt has read the receiver's answer (its duration is measured then).
        var answered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == DeliveryMetrics.MeterName && instrument.Name == DeliveryMetrics.AttemptDurationName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == DeliveryMetrics.SubscriptionTag && tag.Value as string == hook.Id.ToString())
                {
                    answered.TrySetResult();
                }
            }
        });
        listener.Start();
        var recordedBeforeCommit = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        fx.Queue.OnComplete = records =>
        {
            if (records.Any(r => r.Delivery.SubscriptionId == hook.Id && r.Delivery.Committed is { IsCompleted: false }))
            {
                recordedBeforeCommit.TrySetResult();
            }
        };
        fx.Queue.AfterFanOut = async events =>
        {
            if (events.Any(e => e.GymId == gym.GymId))
            {
                await answered.Task.WaitAsync(TimeSpan.FromSeconds(20));
                // A worker that recorded without waiting for the commit would do it now: a second lets that show. It is
                // a bound on a wrong path, not a wait the right one needs.
                await Task.WhenAny(recordedBeforeCommit.Task, Task.Delay(TimeSpan.FromSeconds(1)));
            }
        };
        try
        {
            await gym.AddMemberAsync("user_answered_early");

            // The test clock stands still: a record lost before the commit would leave the delivery claimed.
            var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");
            Assert.True(answered.Task.IsCompleted);
            Assert.False(recordedBeforeCommit.Task.IsCompleted, "the attempt was recorded before its fan-out committed");
            Assert.Single(receiver.At("/answered-early"));
            Assert.Equal(1, delivery.AttemptCount);
            Assert.Null(delivery.ClaimedBy);
            Assert.Single(await fx.AttemptsAsync(delivery.Id));
        }
        finally
        {
            fx.Queue.AfterFanOut = null;
            fx.Queue.OnComplete = null;
        }
    }
}
