using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The dispatcher hands a fresh event's deliveries to this node's worker already claimed (<see cref="DeliverySlots"/>):
/// they are sent, recorded and signed as claimed ones are, and no claim of the queue ever returns them.
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
}
