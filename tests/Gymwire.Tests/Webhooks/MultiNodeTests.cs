using Gymwire.Data;
using Gymwire.Features.Events;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Webhooks;

/// <summary>Two Gymwire nodes on one PostgreSQL database share the outbox and the deliveries without sending anything twice.</summary>
public sealed class MultiNodeTests(PostgresWebhooks fx) : IClassFixture<PostgresWebhooks>
{
    [Fact]
    public async Task Two_nodes_dispatch_and_deliver_every_event_exactly_once()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var all = await gym.CreateWebhookAsync(receiver.Url("/all"));
        var some = await gym.CreateWebhookAsync(receiver.Url("/some"), "member.created");

        // A second node: same configuration, same database, same clock, its own dispatcher and worker.
        var builder = GymwireApp.CreateBuilder(fx.Arguments(fx.ConnectionString), b =>
        {
            b.Services.AddSingleton<TimeProvider>(fx.Clock);
            b.Logging.ClearProviders();
        });
        await using var second = GymwireApp.Build(builder);
        await second.StartAsync();
        try
        {
            // Events written on both nodes, interleaved.
            foreach (var i in Enumerable.Range(0, 60))
            {
                var node = i % 2 == 0 ? fx.Services : second.Services;
                await using var scope = node.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
                db.AddEvent(gym.GymId, i % 3 == 0 ? EventCatalog.MemberJoined : EventCatalog.LeadCreated, new { n = i }, fx.Clock.GetUtcNow().UtcDateTime);
                await db.SaveChangesAsync();
            }
            await receiver.WaitForAsync("/all", 60);
            await receiver.WaitForAsync("/some", 20);
            await fx.WaitForDeliveriesAsync(all.Id, 60, d => d.Status == DeliveryStatus.Delivered, "all delivered");
            await fx.WaitForDeliveriesAsync(some.Id, 20, d => d.Status == DeliveryStatus.Delivered, "all delivered");
        }
        finally
        {
            await second.StopAsync();
        }
        Assert.Equal(60, receiver.At("/all").Count);
        Assert.Equal(60, receiver.At("/all").Select(r => r.Header("webhook-id")).Distinct().Count());
        Assert.Equal(20, receiver.At("/some").Count);
        Assert.All(receiver.At("/some"), r => Assert.Equal("member.created", r.Header("X-CombatScore-Event")));
        Assert.Equal(60, (await fx.DeliveriesAsync(all.Id)).Count);
    }
}
