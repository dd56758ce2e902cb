using Gymwire.Data;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// A clean stop (a restart of the fixture's server, as a deploy does) while an attempt is out to a real receiver over
/// loopback: the attempt finishes and is recorded, so the receiver does not get it again; one that outlasts the drain
/// (a share of the host's shutdown timeout, on the fixture's clock) is cancelled and given back.
/// </summary>
public abstract class ShutdownDrainTests(WebhookFixture fx)
{
    public sealed class Sqlite(SqliteWebhooks f) : ShutdownDrainTests(f), IClassFixture<SqliteWebhooks>;
    public sealed class Postgres(PostgresWebhooks f) : ShutdownDrainTests(f), IClassFixture<PostgresWebhooks>;

    [Fact]
    public async Task An_attempt_in_flight_at_a_stop_finishes_is_recorded_once_and_is_not_sent_again()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        receiver.On("/slow", new Reply { Gate = answer.Task });
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/slow"), "member.joined");
        await gym.AddMemberAsync("user_drain_first");
        await receiver.WaitForAsync("/slow", 1);
        var logStart = fx.Logs.Lines.Count;

        // The receiver answers only once the worker is stopping.
        var restart = fx.RestartAsync();
        await WorkerStoppingAsync(logStart, restart);
        answer.SetResult();
        await restart;

        var delivery = Assert.Single(await fx.DeliveriesAsync(hook.Id));
        Assert.Equal(DeliveryStatus.Delivered, delivery.Status);
        Assert.Null(delivery.ClaimedBy);
        Assert.Equal(200, Assert.Single(await fx.AttemptsAsync(delivery.Id)).StatusCode);

        // Another event after the restart: once both deliveries are delivered, the new node has claimed what was due,
        // and a delivery given back at the stop would have been sent a second time by then.
        await gym.AddMemberAsync("user_drain_second");
        await fx.WaitForDeliveriesAsync(hook.Id, 2, d => d.Status == DeliveryStatus.Delivered, "both delivered");
        var received = receiver.At("/slow");
        Assert.Equal(2, received.Count);
        Assert.Equal(2, received.Select(r => r.Header("webhook-id")).Distinct().Count());
        fx.Logs.AssertNoErrorsSince(logStart, "Gymwire");
    }

    [Fact]
    public async Task Attempts_that_outlast_the_drain_are_cancelled_given_back_and_each_sent_again_after_the_restart()
    {
        await using var receiver = await TestReceiver.StartAsync();
        // The first three requests hang through the stop; later ones succeed.
        receiver.On("/stuck", n => n <= 3 ? new Reply { Hang = true } : new Reply());
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/stuck"), "member.joined");
        foreach (var i in Enumerable.Range(1, 3))
        {
            await gym.AddMemberAsync($"user_drain_stuck{i}");
        }
        await receiver.WaitForAsync("/stuck", 3);
        var shutdownTimeout = fx.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout;
        var logStart = fx.Logs.Lines.Count;

        var restart = fx.RestartAsync();
        await WorkerStoppingAsync(logStart, restart);
        // The drain, a share of the shutdown timeout, is over on the fixture's clock; the host's own timeout (real time) is not.
        fx.Clock.Advance(shutdownTimeout);
        await restart;
        Assert.Contains(fx.Logs.Lines.Skip(logStart), l => l.StartsWith(
            "Warning Gymwire.Features.Webhooks.DeliveryWorker: Stopping: 3 webhook attempts still in flight are cancelled", StringComparison.Ordinal));

        // Given back unrecorded: the restarted node sends each again at once, under the same webhook-id, and none is lost.
        await receiver.WaitForAsync("/stuck", 6);
        var deliveries = await fx.WaitForDeliveriesAsync(hook.Id, 3, d => d.Status == DeliveryStatus.Delivered, "all delivered after the restart");
        var received = receiver.At("/stuck");
        Assert.Equal(6, received.Count);
        var ids = deliveries.Select(d => d.Id.ToString()).Order().ToList();
        Assert.Equal(ids, received.Take(3).Select(r => r.Header("webhook-id")).Order().ToList());
        Assert.Equal(ids, received.Skip(3).Select(r => r.Header("webhook-id")).Order().ToList());
        foreach (var delivery in deliveries)
        {
            Assert.Single(await fx.AttemptsAsync(delivery.Id));
        }
        fx.Logs.AssertNoErrorsSince(logStart, "Gymwire");
    }

    /// <summary>Until the worker says it waits for its attempts in flight (or, for a worker that does not, until the stop is over).</summary>
    private Task WorkerStoppingAsync(int logStart, Task restart) =>
        Eventually.TrueAsync(() => Task.FromResult(restart.IsCompleted || fx.Logs.Lines.Skip(logStart).Any(l => l.StartsWith(
            "Information Gymwire.Features.Webhooks.DeliveryWorker: Stopping: waiting up to", StringComparison.Ordinal))), what: "the worker stopping");
}
