using Gymwire.Data;
using Gymwire.Features.Events;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// On PostgreSQL the dispatcher's pass can deadlock with another writer (its inserts lock the subscriptions they name,
/// while it holds the events it read), and PostgreSQL then rolls one of them back. A pass rolled back loses nothing:
/// it is logged as a warning, not an error, and runs again at once.
/// </summary>
public sealed class DispatcherConflictTests(PostgresWebhooks fx) : IClassFixture<PostgresWebhooks>
{
    [Fact]
    public async Task A_pass_rolled_back_to_break_a_deadlock_is_a_warning_and_fans_the_event_out_when_run_again()
    {
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync("http://127.0.0.1:9/conflict", "lead.created");
        await Eventually.TrueAsync(async () => !await fx.WithDbAsync(db => db.OutboxEvents.AnyAsync(e => e.DispatchedAt == null)), what: "earlier events dispatched");
        var logStart = fx.Logs.Lines.Count;

        await using (var scope = fx.Services.CreateAsyncScope())
        {
            var other = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            await using var transaction = await other.Database.BeginTransactionAsync();
            // The pass's deadlock check must run first, whatever the load: this writer's runs only after 10 s.
            await other.Database.ExecuteSqlRawAsync("SET LOCAL deadlock_timeout = '10s'");
            // The other writer holds the subscription, which the fan-out's insert must reference...
            await other.Database.ExecuteSqlAsync($"SELECT id FROM webhook_subscriptions WHERE id = {hook.Id} FOR UPDATE");
            var eventId = await fx.WithDbAsync(async db =>
            {
                var added = db.AddEvent(gym.GymId, EventCatalog.LeadCreated, new { lead_id = "lead_conflict" }, fx.Clock.GetUtcNow().UtcDateTime);
                await db.SaveChangesAsync();
                return added.Id;
            });
            // ...the dispatcher holds the event and waits for the subscription...
            await fx.WaitForLockWaitAsync("INSERT INTO webhook_deliveries");
            // ...and the other writer now wants the event: PostgreSQL rolls back the pass, whose wait began first.
            await other.Database.ExecuteSqlAsync($"SELECT id FROM outbox_events WHERE id = {eventId} FOR UPDATE");
            await transaction.RollbackAsync();
        }
        // The pass run again at once may have found the event still locked; a new event would wake it.
        fx.Services.GetRequiredService<OutboxSignal>().Notify();

        await Eventually.TrueAsync(() => fx.WithDbAsync(db => db.WebhookDeliveries.AnyAsync(d => d.SubscriptionId == hook.Id)), what: "the event fanned out");
        fx.Logs.AssertNoErrorsSince(logStart);
        Assert.Contains(fx.Logs.Lines.Skip(logStart), l => l.StartsWith("Warning Gymwire.Features.Webhooks.WebhookDispatcher: Webhook dispatch was rolled back", StringComparison.Ordinal));
    }
}
