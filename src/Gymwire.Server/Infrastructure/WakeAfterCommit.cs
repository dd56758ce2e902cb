using System.Data.Common;
using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Infrastructure;

/// <summary>
/// A background worker's wake-up, due when a commit added a row of <see cref="EntityType"/>; <see cref="Committed"/>,
/// if given, sees each such row once its commit is known (for counting what was written).
/// </summary>
public sealed record WakeOnCommit(Type EntityType, WakeSignal Signal, Action<object>? Committed = null);

public static class WakeAfterCommitSetup
{
    /// <summary>Wakes <typeparamref name="TSignal"/>'s worker as soon as a write that added a <typeparamref name="TEntity"/> commits.</summary>
    public static IServiceCollection AddWakeAfterCommit<TEntity, TSignal>(
        this IServiceCollection services, Func<IServiceProvider, Action<TEntity>>? committed = null)
        where TEntity : class where TSignal : WakeSignal
    {
        services.AddSingleton(sp =>
        {
            var observe = committed?.Invoke(sp);
            return new WakeOnCommit(typeof(TEntity), sp.GetRequiredService<TSignal>(),
                observe is null ? null : row => observe((TEntity)row));
        });
        return services;
    }
}

/// <summary>
/// Wakes the workers that drain what a write added (the webhook dispatcher for outbox events, the SMS sender for
/// queued messages) once the write commits, so that they need not wait for their poll; the poll stays the fallback,
/// and the only path for rows other nodes wrote. Inside an explicit transaction the rows are not visible until it
/// commits, so the wake-up waits for the commit.
/// </summary>
public sealed class WakeAfterCommitInterceptor(IEnumerable<WakeOnCommit> wakes) : ISaveChangesInterceptor, IDbTransactionInterceptor
{
    private readonly WakeOnCommit[] _wakes = [.. wakes];

    // The rows each context added since its last commit, with the wake-up each owes; weak, so an abandoned context
    // cannot leak.
    private static readonly ConditionalWeakTable<DbContext, List<(WakeOnCommit Wake, object Row)>> Pending = [];

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

    public void TransactionCommitted(DbTransaction transaction, TransactionEndEventData eventData) => Notify(eventData.Context);

    public Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Notify(eventData.Context);
        return Task.CompletedTask;
    }

    private void MarkPending(DbContext? context)
    {
        if (context is null || _wakes.Length == 0)
        {
            return;
        }
        foreach (var entry in context.ChangeTracker.Entries())
        {
            if (entry.State != EntityState.Added)
            {
                continue;
            }
            foreach (var wake in _wakes)
            {
                if (wake.EntityType.IsInstanceOfType(entry.Entity))
                {
                    Pending.GetOrCreateValue(context).Add((wake, entry.Entity));
                }
            }
        }
    }

    private static void NotifyIfCommitted(DbContext? context)
    {
        if (context is not null && context.Database.CurrentTransaction is null)
        {
            Notify(context);
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
            Pending.Remove(context);
        }
    }

    private static void Notify(DbContext? context)
    {
        if (context is null || !Pending.TryGetValue(context, out var rows))
        {
            return;
        }
        Pending.Remove(context);
        HashSet<WakeSignal>? woken = null;
        foreach (var (wake, row) in rows)
        {
            wake.Committed?.Invoke(row);
            if ((woken ??= []).Add(wake.Signal))
            {
                wake.Signal.Notify();
            }
        }
    }
}
