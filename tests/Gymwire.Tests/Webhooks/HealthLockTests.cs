using Gymwire.Data;
using Gymwire.Features.Events;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// On PostgreSQL a batch of recorded attempts locks the subscriptions whose health it changes, while the dispatcher's
/// inserts lock the subscriptions they reference (their foreign key checks, in the order the deliveries are written).
/// The two locks must not conflict: when they did, a fan-out and a record on the same endpoints deadlocked now and then.
/// </summary>
public sealed class HealthLockTests(PostgresNoDispatcher fx) : IClassFixture<PostgresNoDispatcher>
{
    [Fact]
    public async Task A_fan_out_to_endpoints_whose_health_a_record_holds_locked_goes_on_without_waiting_for_it()
    {
        var gym = await fx.CreateGymAsync();
        var first = await gym.CreateWebhookAsync("http://127.0.0.1:9/lock/1", "lead.created");
        var second = await gym.CreateWebhookAsync("http://127.0.0.1:9/lock/2", "lead.created");
        await fx.DrainOutboxAsync();
        await fx.WithDbAsync(db =>
        {
            db.AddEvent(gym.GymId, EventCatalog.LeadCreated, new { lead_id = "lead_locked" }, fx.Clock.GetUtcNow().UtcDateTime);
            return db.SaveChangesAsync();
        });

        var dispatcher = ActivatorUtilities.CreateInstance<WebhookDispatcher>(fx.Services);
        await using var scope = fx.Services.CreateAsyncScope();
        var recording = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        await using (var transaction = await recording.Database.BeginTransactionAsync())
        {
            // What a batch with failures on both endpoints holds until its commit.
            await recording.Database.ExecuteSqlAsync(PostgresDeliveryQueue.LockHealth([first.Id, second.Id], []));
            var pass = await dispatcher.DispatchBatchAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(1, pass.Events);
            await transaction.CommitAsync();
        }
        var subscriptions = await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.GymId == gym.GymId).Select(d => d.SubscriptionId).ToListAsync());
        Assert.Equal(new[] { first.Id, second.Id }.Order(), subscriptions.Order());
    }
}
