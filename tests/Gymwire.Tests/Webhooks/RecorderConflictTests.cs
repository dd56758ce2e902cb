using Gymwire.Data;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// On PostgreSQL an attempt's record can deadlock with another writer (it updates the delivery, then its attempt row
/// references the gym), and PostgreSQL then rolls one of them back. The record rolled back is written again: the
/// delivery keeps its claim and is not sent a second time, and it is a warning, not an error.
/// </summary>
public sealed class RecorderConflictTests(PostgresWebhooks fx) : IClassFixture<PostgresWebhooks>
{
    [Fact]
    public async Task An_attempt_record_rolled_back_to_break_a_deadlock_is_written_again_without_a_second_send()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        receiver.On("/conflict", new Reply { Gate = answer.Task });
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/conflict"), "member.joined");
        await gym.AddMemberAsync("user_recorder_conflict");
        await receiver.WaitForAsync("/conflict", 1);
        var delivery = Assert.Single(await fx.WaitForDeliveriesAsync(hook.Id, 1, _ => true, "the fan-out committed"));
        var logStart = fx.Logs.Lines.Count;

        await using (var scope = fx.Services.CreateAsyncScope())
        {
            var other = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            await using var transaction = await other.Database.BeginTransactionAsync();
            // The other writer holds the gym, which the attempt row must reference...
            await other.Database.ExecuteSqlAsync($"SELECT id FROM gyms WHERE id = {gym.GymId} FOR UPDATE");
            answer.SetResult();
            // ...the recorder holds the delivery it updated and waits for the gym...
            await fx.WaitForLockWaitAsync("INSERT INTO webhook_attempts");
            // ...and the other writer now wants the delivery: PostgreSQL rolls back the record, whose wait began first.
            await other.Database.ExecuteSqlAsync($"SELECT id FROM webhook_deliveries WHERE id = {delivery.Id} FOR UPDATE");
            await transaction.RollbackAsync();
        }

        // Recorded with the clock standing still: a record given up would leave the delivery claimed until its lease ends.
        var delivered = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "the attempt recorded");
        Assert.Equal(1, delivered.AttemptCount);
        Assert.Single(await fx.AttemptsAsync(delivered.Id));
        Assert.Single(receiver.At("/conflict"));
        fx.Logs.AssertNoErrorsSince(logStart);
        Assert.Contains(fx.Logs.Lines.Skip(logStart), l => l.StartsWith("Warning Gymwire.Features.Webhooks.AttemptRecorder: Recording 1 webhook attempts was rolled back", StringComparison.Ordinal));
        // The try rolled back had decided "delivered" too: only the committed one is logged.
        Assert.Single(fx.Logs.Lines.Skip(logStart), l => l.StartsWith($"Debug Gymwire.Features.Webhooks.AttemptRecorder: Webhook delivery {delivered.Id} to subscription {hook.Id} delivered", StringComparison.Ordinal));
    }
}
