using System.Data.Common;
using System.Runtime.CompilerServices;
using Gymwire.Features.Events;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Storage;

namespace Gymwire.Data;

/// <summary>
/// Makes a gym's outbox sequence numbers follow commit order on PostgreSQL, which assigns identity values at INSERT:
/// without it a reader going forward from a sequence number could pass over an event that commits late with a lower one.
/// A transaction writing a gym's events takes that gym's transaction-level advisory lock first, released at commit.
/// </summary>
internal sealed class PostgresOutboxOrder : ISaveChangesInterceptor, IDbTransactionInterceptor
{
    public static readonly PostgresOutboxOrder Instance = new();

    /// <summary>The first key of the two-key advisory locks ("Gw" + 1); the second is derived from the gym id.</summary>
    private const int LockSpace = 0x4777_0001;

    // Gyms whose lock the context's next EF-started transaction must take before it writes.
    private static readonly ConditionalWeakTable<DbContext, Guid[]> Pending = [];

    public async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        if (LockNow(eventData.Context) is var (transaction, gyms))
        {
            await LockAsync(transaction, gyms, cancellationToken);
        }
        return result;
    }

    public InterceptionResult<int> SavingChanges(DbContextEventData eventData, InterceptionResult<int> result)
    {
        if (LockNow(eventData.Context) is var (transaction, gyms))
        {
            LockAsync(transaction, gyms, CancellationToken.None, sync: true).GetAwaiter().GetResult();
        }
        return result;
    }

    public async ValueTask<DbTransaction> TransactionStartedAsync(DbConnection connection, TransactionEndEventData eventData, DbTransaction result, CancellationToken cancellationToken = default)
    {
        if (TakePending(eventData.Context) is { } gyms)
        {
            await LockAsync(result, gyms, cancellationToken);
        }
        return result;
    }

    public DbTransaction TransactionStarted(DbConnection connection, TransactionEndEventData eventData, DbTransaction result)
    {
        if (TakePending(eventData.Context) is { } gyms)
        {
            LockAsync(result, gyms, CancellationToken.None, sync: true).GetAwaiter().GetResult();
        }
        return result;
    }

    /// <summary>
    /// Inside a transaction the save's gyms are locked at once; otherwise they are remembered for the transaction EF
    /// starts for the save (made to start one even for a single statement: the lock must be held until commit).
    /// </summary>
    private static (DbTransaction, Guid[])? LockNow(DbContext? context)
    {
        if (context is null || GymsWithNewEvents(context) is not { Length: > 0 } gyms)
        {
            return null;
        }
        if (context.Database.CurrentTransaction is { } transaction)
        {
            return (transaction.GetDbTransaction(), gyms);
        }
        context.Database.AutoTransactionBehavior = AutoTransactionBehavior.Always;
        Pending.AddOrUpdate(context, gyms);
        return null;
    }

    private static Guid[]? TakePending(DbContext? context)
    {
        if (context is not null && Pending.TryGetValue(context, out var gyms))
        {
            Pending.Remove(context);
            return gyms;
        }
        return null;
    }

    public void SaveChangesFailed(DbContextErrorEventData eventData) => Forget(eventData.Context);

    public Task SaveChangesFailedAsync(DbContextErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        Forget(eventData.Context);
        return Task.CompletedTask;
    }

    public int SavedChanges(SaveChangesCompletedEventData eventData, int result)
    {
        Forget(eventData.Context);
        return result;
    }

    public ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        Forget(eventData.Context);
        return ValueTask.FromResult(result);
    }

    private static void Forget(DbContext? context)
    {
        if (context is not null)
        {
            Pending.Remove(context);
        }
    }

    private static Guid[] GymsWithNewEvents(DbContext context) =>
        [.. context.ChangeTracker.Entries<OutboxEvent>().Where(e => e.State == EntityState.Added).Select(e => e.Entity.GymId).Distinct().Order()];

    /// <summary>Takes the gyms' locks in a fixed order (by id), so two transactions that write several gyms cannot deadlock on them.</summary>
    private static async Task LockAsync(DbTransaction transaction, Guid[] gyms, CancellationToken ct, bool sync = false)
    {
        foreach (var gymId in gyms)
        {
            using var command = transaction.Connection!.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = $"SELECT pg_advisory_xact_lock({LockSpace}, {LockKey(gymId)})";
            if (sync)
            {
                command.ExecuteNonQuery();
            }
            else
            {
                await command.ExecuteNonQueryAsync(ct);
            }
        }
    }

    /// <summary>A gym's lock key: its id folded to 32 bits. Two gyms that share a key only wait for each other.</summary>
    internal static int LockKey(Guid gymId)
    {
        Span<byte> bytes = stackalloc byte[16];
        gymId.TryWriteBytes(bytes);
        var key = 0;
        for (var i = 0; i < 16; i += 4)
        {
            key ^= BitConverter.ToInt32(bytes[i..(i + 4)]);
        }
        return key;
    }
}
