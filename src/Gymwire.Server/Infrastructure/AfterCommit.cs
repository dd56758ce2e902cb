using System.Data.Common;
using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gymwire.Infrastructure;

/// <summary>
/// A feature's interest in rows that EF Core writes: <see cref="Watches"/> picks them when they are saved, and
/// <see cref="Committed"/> sees them once their commit is known. Registered with <see cref="AfterCommitSetup.AddAfterCommit{T}"/>.
/// </summary>
public interface IAfterCommit
{
    /// <summary>Whether this row, saved as added, modified or deleted, concerns this observer.</summary>
    bool Watches(object row, EntityState state);

    /// <summary>The watched rows of a write are committed.</summary>
    void Committed(IReadOnlyList<object> rows);

    /// <summary>
    /// A save outside a transaction failed. Usually nothing was written, but when the reply to the commit was lost it
    /// may have been: an observer that must never miss a commit (a cache) treats this as one.
    /// </summary>
    void SaveFailed(IReadOnlyList<object> rows) { }
}

/// <summary>
/// A background worker's wake-up, due when a commit added a row of <paramref name="entityType"/>;
/// <paramref name="eachRow"/>, if given, sees each such row once its commit is known (for counting what was written).
/// </summary>
public sealed class WakeOnCommit(Type entityType, WakeSignal signal, Action<object>? eachRow = null) : IAfterCommit
{
    public bool Watches(object row, EntityState state) => state == EntityState.Added && entityType.IsInstanceOfType(row);

    public void Committed(IReadOnlyList<object> rows)
    {
        if (eachRow is not null)
        {
            foreach (var row in rows)
            {
                eachRow(row);
            }
        }
        signal.Notify();
    }
}

public static class AfterCommitSetup
{
    /// <summary>Calls <typeparamref name="T"/> (a singleton) after every commit of rows it watches.</summary>
    public static IServiceCollection AddAfterCommit<T>(this IServiceCollection services) where T : class, IAfterCommit
    {
        services.TryAddSingleton<AfterCommitInterceptor>();
        services.AddSingleton<T>();
        services.AddSingleton<IAfterCommit>(sp => sp.GetRequiredService<T>());
        return services;
    }

    /// <summary>Wakes <typeparamref name="TSignal"/>'s worker as soon as a write that added a <typeparamref name="TEntity"/> commits.</summary>
    public static IServiceCollection AddWakeAfterCommit<TEntity, TSignal>(
        this IServiceCollection services, Func<IServiceProvider, Action<TEntity>>? committed = null)
        where TEntity : class where TSignal : WakeSignal
    {
        services.TryAddSingleton<AfterCommitInterceptor>();
        services.AddSingleton<IAfterCommit>(sp =>
        {
            var observe = committed?.Invoke(sp);
            return new WakeOnCommit(typeof(TEntity), sp.GetRequiredService<TSignal>(),
                observe is null ? null : row => observe((TEntity)row));
        });
        return services;
    }
}

/// <summary>
/// Collects the rows each context saves that an <see cref="IAfterCommit"/> watches, and hands them over once they are
/// committed: at the end of <c>SaveChanges</c>, or inside an explicit transaction at its commit (the rows are not
/// visible before); a rollback forgets them. Wake-ups (<see cref="WakeOnCommit"/>) run after every other observer, so
/// that a worker they wake finds caches already told of the commit.
/// </summary>
public sealed class AfterCommitInterceptor(IEnumerable<IAfterCommit> observers) : ISaveChangesInterceptor, IDbTransactionInterceptor
{
    private readonly IAfterCommit[] _observers = [.. observers.OrderBy(o => o is WakeOnCommit ? 1 : 0)];

    // Per context, the rows each observer watches since its last commit (indexed as _observers); weak, so an
    // abandoned context cannot leak.
    private readonly ConditionalWeakTable<DbContext, List<object>?[]> _pending = [];

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
        CommittedIfNotInTransaction(eventData.Context);
        return result;
    }

    public ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        CommittedIfNotInTransaction(eventData.Context);
        return ValueTask.FromResult(result);
    }

    // Inside a transaction, the transaction's end decides.
    public void SaveChangesFailed(DbContextErrorEventData eventData) => FailedIfNotInTransaction(eventData.Context);

    public Task SaveChangesFailedAsync(DbContextErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        FailedIfNotInTransaction(eventData.Context);
        return Task.CompletedTask;
    }

    public void TransactionRolledBack(DbTransaction transaction, TransactionEndEventData eventData) => Take(eventData.Context);

    public Task TransactionRolledBackAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Take(eventData.Context);
        return Task.CompletedTask;
    }

    public void TransactionCommitted(DbTransaction transaction, TransactionEndEventData eventData) => Committed(eventData.Context);

    public Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Committed(eventData.Context);
        return Task.CompletedTask;
    }

    private void MarkPending(DbContext? context)
    {
        if (context is null || _observers.Length == 0)
        {
            return;
        }
        List<object>?[]? pending = null;
        foreach (var entry in context.ChangeTracker.Entries())
        {
            if (entry.State is not (EntityState.Added or EntityState.Modified or EntityState.Deleted))
            {
                continue;
            }
            for (var i = 0; i < _observers.Length; i++)
            {
                if (_observers[i].Watches(entry.Entity, entry.State))
                {
                    pending ??= _pending.GetValue(context, _ => new List<object>?[_observers.Length]);
                    (pending[i] ??= []).Add(entry.Entity);
                }
            }
        }
    }

    private void CommittedIfNotInTransaction(DbContext? context)
    {
        if (context is not null && context.Database.CurrentTransaction is null)
        {
            Committed(context);
        }
    }

    private void FailedIfNotInTransaction(DbContext? context)
    {
        if (context is null || context.Database.CurrentTransaction is not null || Take(context) is not { } pending)
        {
            return;
        }
        for (var i = 0; i < _observers.Length; i++)
        {
            if (pending[i] is { } rows)
            {
                _observers[i].SaveFailed(rows);
            }
        }
    }

    private void Committed(DbContext? context)
    {
        if (Take(context) is not { } pending)
        {
            return;
        }
        for (var i = 0; i < _observers.Length; i++)
        {
            if (pending[i] is { } rows)
            {
                _observers[i].Committed(rows);
            }
        }
    }

    private List<object>?[]? Take(DbContext? context)
    {
        if (context is null || !_pending.TryGetValue(context, out var pending))
        {
            return null;
        }
        _pending.Remove(context);
        return pending;
    }
}
