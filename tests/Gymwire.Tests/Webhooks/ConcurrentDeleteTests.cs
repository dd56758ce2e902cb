using System.Net;
using Gymwire.Data;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// On PostgreSQL two writers that take the same rows in opposite orders deadlock, and PostgreSQL rolls one of them back.
/// When it is a request's, the client gets a 503 with <c>Retry-After</c>, not a 500: nothing of the request is applied,
/// no error is logged, and the same request then succeeds. The request here is <c>DELETE /api/gym/webhooks/{id}</c>,
/// which deactivates the webhook and pauses its queued deliveries in one transaction; the test plays the other writer.
/// </summary>
public sealed class ConcurrentDeleteTests(PostgresNoDispatcher fx) : IClassFixture<PostgresNoDispatcher>
{
    [Fact]
    public async Task A_request_rolled_back_to_break_a_deadlock_is_answered_503_to_retry_and_changes_nothing()
    {
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync("http://127.0.0.1:9/deadlock", "lead.created");
        var delivery = await QueueAsync(gym.GymId, hook.Id);
        var logStart = fx.Logs.Lines.Count;
        using var owner = gym.Owner();

        await using (var scope = fx.Services.CreateAsyncScope())
        {
            var other = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            await using var transaction = await other.Database.BeginTransactionAsync();
            // The request's deadlock check must run first, whatever the load: this writer's runs only after 10 s.
            await other.Database.ExecuteSqlRawAsync("SET LOCAL deadlock_timeout = '10s'");
            // The other writer holds the delivery's row...
            await other.Database.ExecuteSqlAsync($"UPDATE webhook_deliveries SET last_error = 'held' WHERE id = {delivery.Id}");
            // ...the request updates the subscription's row and waits for the delivery's, to pause it...
            var deleting = owner.DeleteAsync($"/api/gym/webhooks/{hook.Id}");
            await fx.WaitForLockWaitAsync("webhook_deliveries", deleting);
            // ...and the other writer now wants the subscription's. Each backend looks for a cycle deadlock_timeout after it
            // began to wait and, finding one, rolls its own transaction back: the request's (1 s) comes first.
            await other.Database.ExecuteSqlAsync($"SELECT id FROM webhook_subscriptions WHERE id = {hook.Id} FOR NO KEY UPDATE");
            var refused = await deleting.WaitAsync(TimeSpan.FromSeconds(30));

            var error = await refused.AssertErrorAsync(HttpStatusCode.ServiceUnavailable);
            Assert.Equal("1", refused.Headers.RetryAfter?.ToString());
            Assert.Contains("retry", error, StringComparison.Ordinal);
            await transaction.RollbackAsync();
        }

        Assert.True(await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook.Id).Select(s => s.IsActive).SingleAsync()));
        Assert.NotNull(await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == delivery.Id).Select(d => d.NextAttemptAt).SingleAsync()));
        fx.Logs.AssertNoErrorsSince(logStart);
        Assert.Contains(fx.Logs.Lines.Skip(logStart), l => l.StartsWith("Warning Gymwire.Errors: Concurrent change for DELETE", StringComparison.Ordinal));

        await (await owner.DeleteAsync($"/api/gym/webhooks/{hook.Id}")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.False(await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook.Id).Select(s => s.IsActive).SingleAsync()));
        Assert.Null(await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == delivery.Id).Select(d => d.NextAttemptAt).SingleAsync()));
    }

    /// <summary>
    /// The dashboard's delete (the webhook with its log: the deliveries cascade) meeting a writer that holds one of its
    /// deliveries and then wants the subscription: the page is told to try again, and nothing is deleted.
    /// </summary>
    [Fact]
    public async Task A_delete_rolled_back_to_break_a_deadlock_is_a_conflict_to_try_again_and_deletes_nothing()
    {
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync("http://127.0.0.1:9/deadlock-delete", "lead.created");
        var delivery = await QueueAsync(gym.GymId, hook.Id);

        await using (var scope = fx.Services.CreateAsyncScope())
        {
            var other = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            await using var transaction = await other.Database.BeginTransactionAsync();
            // The request's deadlock check must run first, whatever the load: this writer's runs only after 10 s.
            await other.Database.ExecuteSqlRawAsync("SET LOCAL deadlock_timeout = '10s'");
            await other.Database.ExecuteSqlAsync($"UPDATE webhook_deliveries SET last_error = 'held' WHERE id = {delivery.Id}");
            await using var deleteScope = fx.Services.CreateAsyncScope();
            var deleting = deleteScope.ServiceProvider.GetRequiredService<WebhookService>().DeleteAsync(WebhookAccess.Owner(gym.GymId), hook.Id, CancellationToken.None);
            await fx.WaitForLockWaitAsync("webhook_subscriptions", deleting);
            await other.Database.ExecuteSqlAsync($"SELECT id FROM webhook_subscriptions WHERE id = {hook.Id} FOR NO KEY UPDATE");
            var outcome = await deleting.WaitAsync(TimeSpan.FromSeconds(30));

            Assert.Equal(WebhookFailure.Conflict, outcome.Failure);
            Assert.Contains("try again", outcome.Error, StringComparison.Ordinal);
            await transaction.RollbackAsync();
        }

        Assert.True(await fx.WithDbAsync(db => db.WebhookSubscriptions.AnyAsync(s => s.Id == hook.Id)));
        Assert.True(await fx.WithDbAsync(db => db.WebhookDeliveries.AnyAsync(d => d.Id == delivery.Id)));
        await using (var scope = fx.Services.CreateAsyncScope())
        {
            var again = await scope.ServiceProvider.GetRequiredService<WebhookService>().DeleteAsync(WebhookAccess.Owner(gym.GymId), hook.Id, CancellationToken.None);
            Assert.NotNull(again.Value);
        }
        Assert.False(await fx.WithDbAsync(db => db.WebhookDeliveries.AnyAsync(d => d.Id == delivery.Id)));
    }

    private async Task<WebhookDelivery> QueueAsync(Guid gymId, Guid subscriptionId)
    {
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var delivery = new WebhookDelivery
        {
            Id = Guid.CreateVersion7(), GymId = gymId, SubscriptionId = subscriptionId, EventId = Guid.NewGuid(), Event = "lead.created",
            Payload = WebhookPayloads.Build(Guid.NewGuid(), "lead.created", gymId, "{}", now), Status = DeliveryStatus.Pending,
            CreatedAt = now, NextAttemptAt = now.AddHours(1),
        };
        await fx.WithDbAsync(db =>
        {
            db.WebhookDeliveries.Add(delivery);
            return db.SaveChangesAsync();
        });
        return delivery;
    }
}
