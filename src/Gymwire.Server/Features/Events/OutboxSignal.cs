using System.Data.Common;
using Gymwire.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Features.Events;

/// <summary>
/// Wakes whoever waits for new outbox events (the webhook dispatcher) as soon as a write that added
/// events commits, so delivery does not wait for a polling interval. Polling remains the fallback
/// (and the only path for events written by another node).
/// </summary>
public sealed class OutboxSignal : WakeSignal;

/// <summary>Signals <see cref="OutboxSignal"/> after a SaveChanges or transaction that wrote outbox events commits.</summary>
public sealed class OutboxSignalInterceptor(OutboxSignal signal) : ISaveChangesInterceptor, IDbTransactionInterceptor
{
    private static readonly object PendingKey = new();

    public InterceptionResult<int> SavingChanges(DbContextEventData eventData, InterceptionResult<int> result)
    {
        MarkPending(eventData.Context);
        return result;
    }

    public ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        MarkPending(eventData.Context);
        return ValueTask.FromResult(result);
    }

    public int SavedChanges(SaveChangesCompletedEventData eventData, int result)
    {
        NotifyIfCommitted(eventData.Context);
        return result;
    }

    public ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        NotifyIfCommitted(eventData.Context);
        return ValueTask.FromResult(result);
    }

    public void TransactionCommitted(DbTransaction transaction, TransactionEndEventData eventData) => NotifyPending(eventData.Context);

    public Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        NotifyPending(eventData.Context);
        return Task.CompletedTask;
    }

    private static void MarkPending(DbContext? context)
    {
        if (context is not null && context.ChangeTracker.Entries<OutboxEvent>().Any(e => e.State == EntityState.Added))
        {
            Pending.Add(context);
        }
    }

    private void NotifyIfCommitted(DbContext? context)
    {
        // Inside an explicit transaction the rows are not visible yet: wait for TransactionCommitted.
        if (context is not null && context.Database.CurrentTransaction is null)
        {
            NotifyPending(context);
        }
    }

    private void NotifyPending(DbContext? context)
    {
        if (context is not null && Pending.Remove(context))
        {
            signal.Notify();
        }
    }

    // Contexts with uncommitted outbox rows; weak so an abandoned context cannot leak.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<DbContext, object> PendingTable = [];

    private static class Pending
    {
        public static void Add(DbContext context) => PendingTable.AddOrUpdate(context, PendingKey);
        public static bool Remove(DbContext context) => PendingTable.Remove(context);
    }
}
