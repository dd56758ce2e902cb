using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.Extensions.Options;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The dispatcher hands a fresh event's deliveries to this node's worker already claimed (<see cref="DeliverySlots"/>):
/// they are sent, recorded and signed as claimed ones are, and no claim of the queue ever returns them. The worker's
/// claims and the dispatcher's hand-overs share the node's slots without taking one another's.
/// </summary>
public abstract class HandOverTests(WrappedQueueFixture fx)
{
    public sealed class Sqlite(SqliteWrappedQueue f) : HandOverTests(f), IClassFixture<SqliteWrappedQueue>;
    public sealed class Postgres(PostgresWrappedQueue f) : HandOverTests(f), IClassFixture<PostgresWrappedQueue>;

    [Fact]
    public async Task A_fresh_events_deliveries_are_sent_once_each_without_a_claim_of_their_own()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hooks = new List<(CreatedHook Hook, string Path)>();
        for (var i = 0; i < 3; i++)
        {
            hooks.Add((await gym.CreateWebhookAsync(receiver.Url($"/handed-{i}"), "member.joined"), $"/handed-{i}"));
        }

        await gym.AddMemberAsync("user_handed_over");

        foreach (var (hook, path) in hooks)
        {
            var received = Assert.Single(await receiver.WaitForAsync(path, 1));
            Assert.True(StandardWebhooksVerifier.VerifyCombatScore(hook.Secret, received.Headers, received.Body));
            Assert.Equal("member.joined", received.Json().GetProperty("event").GetString());
            var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");
            Assert.DoesNotContain(delivery.Id, fx.Queue.Claimed);
            Assert.Equal(1, delivery.AttemptCount);
            Assert.Null(delivery.ClaimedBy);
            Assert.Null(delivery.LockedUntil);
            var attempt = Assert.Single(await fx.AttemptsAsync(delivery.Id));
            Assert.Equal((1, 200, DeliveryMetrics.Triggers.Initial), (attempt.Number, attempt.StatusCode, attempt.Trigger));
        }
        Assert.Equal(3, receiver.Requests.Count(r => r.Path.StartsWith("/handed-", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task While_a_claim_is_out_the_slots_it_may_fill_are_its_own_and_a_failed_claim_gives_them_back()
    {
        var slots = fx.Services.GetRequiredService<DeliverySlots>();
        var capacity = fx.Services.GetRequiredService<IOptions<WebhookOptions>>().Value.MaxConcurrentDeliveries;
        await Eventually.TrueAsync(() => Task.FromResult(slots.Free == capacity), what: "every slot free");

        // A hand-over meanwhile finds no slot: taken after the claim, a slot the hand-over took left a claimed delivery
        // with none, given back unattempted.
        var duringClaim = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        fx.Queue.BeforeClaim = () =>
        {
            var taken = slots.Take(1);
            slots.Return(taken);
            duringClaim.SetResult(taken);
        };
        fx.WakeWorker();
        Assert.Equal(0, await duringClaim.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        await Eventually.TrueAsync(() => Task.FromResult(slots.Free == capacity), what: "every slot free after the claim");

        // A claim that fails (the database) holds none after it.
        var failed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        fx.Queue.BeforeClaim = () =>
        {
            failed.SetResult();
            throw new InvalidOperationException("The connection was lost (a test's injected failure)");
        };
        fx.WakeWorker();
        await failed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => Task.FromResult(slots.Free == capacity), what: "every slot free after the failed claim");

        // And the worker goes on: a fresh event is still delivered.
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        await gym.CreateWebhookAsync(receiver.Url("/after-failed-claim"), "member.joined");
        await gym.AddMemberAsync("user_after_failed_claim");
        Assert.Single(await receiver.WaitForAsync("/after-failed-claim", 1));
    }
}
