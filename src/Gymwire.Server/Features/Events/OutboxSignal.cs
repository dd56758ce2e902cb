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

/// <summary>
/// Signals <see cref="OutboxSignal"/> after a SaveChanges or transaction that wrote outbox events commits, and counts
/// those events (<see cref="EventMetrics"/>).
/// </summary>
public sealed class OutboxSignalInterceptor(OutboxSignal signal, EventMetrics metrics) : ISaveChangesInterceptor, IDbTransactionInterceptor
{
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

    public void SaveChangesFailed(DbContextErrorEventData eventData) => ForgetIfNotInTransaction(eventData.Context);

    public Task SaveChangesFailedAsync(DbContextErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        ForgetIfNotInTransaction(eventData.Context);
        return Task.CompletedTask;
    }

    public void TransactionRolledBack(DbTransaction transaction, TransactionEndEventData eventData) => Forget(eventData.Context);

    public Task TransactionRolledBackAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Forget(eventData.Context);
        return Task.CompletedTask;
    }

    public void TransactionCommitted(DbTransaction transaction, TransactionEndEventData eventData) => NotifyPending(eventData.Context);

    public Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        NotifyPending(eventData.Context);
        return Task.CompletedTask;
    }

    private static void MarkPending(DbContext? context)
    {
        if (context is null)
        {
            return;
        }
        List<string>? types = null;
        foreach (var entry in context.ChangeTracker.Entries<OutboxEvent>())
        {
            if (entry.State == EntityState.Added)
            {
                (types ??= []).Add(entry.Entity.Type);
            }
        }
        if (types is not null)
        {
            Pending.Add(context, types);
        }
    }

    private static void ForgetIfNotInTransaction(DbContext? context)
    {
        if (context is not null && context.Database.CurrentTransaction is null)
        {
            Forget(context);
        }
    }

    private static void Forget(DbContext? context)
    {
        if (context is not null)
        {
            Pending.Remove(context, out _);
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
        if (context is not null && Pending.Remove(context, out var types))
        {
            signal.Notify();
            if (metrics.Enabled)
            {
                foreach (var type in types)
                {
                    metrics.Written(type);
                }
            }
        }
    }

    // Contexts with uncommitted outbox rows (their event types); weak so an abandoned context cannot leak.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<DbContext, List<string>> PendingTable = [];

    private static class Pending
    {
        // A context is used by one thread at a time, so its entry needs no lock of its own.

        /// <summary>Several SaveChanges inside one transaction add up.</summary>
        public static void Add(DbContext context, List<string> types)
        {
            if (PendingTable.TryGetValue(context, out var earlier))
            {
                earlier.AddRange(types);
            }
            else
            {
                PendingTable.AddOrUpdate(context, types);
            }
        }

        public static bool Remove(DbContext context, out List<string> types)
        {
            if (PendingTable.TryGetValue(context, out var found) && PendingTable.Remove(context))
            {
                types = found;
                return true;
            }
            types = [];
            return false;
        }
    }
}
