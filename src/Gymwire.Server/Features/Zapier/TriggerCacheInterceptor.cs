using System.Data.Common;
using System.Runtime.CompilerServices;
using Gymwire.Features.Attendance;
using Gymwire.Features.Members;
using Gymwire.Features.Payments;
using Gymwire.Features.Training;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Features.Zapier;

/// <summary>
/// Moves <see cref="TriggerCache"/>'s stamp of every gym whose members, payments, training sessions or check-ins an EF
/// Core write added, changed or removed, once the write has committed (inside an explicit transaction, at its commit;
/// nothing on rollback), so that this node's next poll reads the database.
/// </summary>
public sealed class TriggerCacheInterceptor(TriggerCache cache) : ISaveChangesInterceptor, IDbTransactionInterceptor
{
    private static readonly ConditionalWeakTable<DbContext, HashSet<Guid>> Pending = [];

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
        InvalidateIfCommitted(eventData.Context);
        return result;
    }

    public ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        InvalidateIfCommitted(eventData.Context);
        return ValueTask.FromResult(result);
    }

    // A failed save outside a transaction changed nothing; inside one, the transaction's end decides.
    public void SaveChangesFailed(DbContextErrorEventData eventData) => InvalidateIfCommitted(eventData.Context);

    public Task SaveChangesFailedAsync(DbContextErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        InvalidateIfCommitted(eventData.Context);
        return Task.CompletedTask;
    }

    public void TransactionRolledBack(DbTransaction transaction, TransactionEndEventData eventData) => Forget(eventData.Context);

    public Task TransactionRolledBackAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Forget(eventData.Context);
        return Task.CompletedTask;
    }

    public void TransactionCommitted(DbTransaction transaction, TransactionEndEventData eventData) => Invalidate(eventData.Context);

    public Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Invalidate(eventData.Context);
        return Task.CompletedTask;
    }

    private void MarkPending(DbContext? context)
    {
        if (context is null || !cache.Enabled)
        {
            return;
        }
        foreach (var entry in context.ChangeTracker.Entries())
        {
            if (entry.State is not (EntityState.Added or EntityState.Modified or EntityState.Deleted))
            {
                continue;
            }
            Guid? gymId = entry.Entity switch
            {
                Member m => m.GymId,
                Payment p => p.GymId,
                TrainingSession s => s.GymId,
                AttendanceRecord a => a.GymId,
                _ => null,
            };
            if (gymId is { } id)
            {
                Pending.GetOrCreateValue(context).Add(id);
            }
        }
    }

    private void InvalidateIfCommitted(DbContext? context)
    {
        if (context is not null && context.Database.CurrentTransaction is null)
        {
            // Outside a transaction a failed save may still have committed nothing or, on a lost reply, something:
            // invalidating costs one read, so it is done either way.
            Invalidate(context);
        }
    }

    private void Forget(DbContext? context)
    {
        if (context is not null)
        {
            Pending.Remove(context);
        }
    }

    private void Invalidate(DbContext? context)
    {
        if (context is null || !Pending.TryGetValue(context, out var gyms))
        {
            return;
        }
        Pending.Remove(context);
        foreach (var gymId in gyms)
        {
            cache.Invalidate(gymId);
        }
    }
}
