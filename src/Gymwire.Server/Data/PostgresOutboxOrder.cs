using System.Data.Common;
using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Storage;

namespace Gymwire.Data;

/// <summary>
/// Makes a gym's outbox sequence numbers follow commit order on PostgreSQL, which assigns identity values at INSERT:
/// without it a reader going forward from a sequence number could pass over an event that commits late with a lower one.
/// Each event row is numbered under its gym's transaction-level advisory lock, released at commit: the insert trigger of
/// the <c>OutboxOrderTrigger</c> migration takes the lock and then draws the number, inside the insert, so it costs no
/// round trip. This interceptor only covers a save whose events belong to several gyms: it takes their locks first, in
/// a fixed order, so that two such transactions cannot deadlock by taking them in opposite orders.
/// </summary>
internal sealed class PostgresOutboxOrder : ISaveChangesInterceptor, IDbTransactionInterceptor
{
    public static readonly PostgresOutboxOrder Instance = new();

    /// <summary>The first key of the two-key advisory locks ("Gw" + 1); the second is <see cref="LockKey"/>. The trigger uses both.</summary>
    internal const int LockSpace = 0x4777_0001;

    // Lock keys the context's next EF-started transaction must take before it writes.
    private static readonly ConditionalWeakTable<DbContext, int[]> Pending = [];

    public async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        if (LockNow(eventData.Context) is var (transaction, keys))
        {
            await LockAsync(transaction, keys, cancellationToken);
        }
        return result;
    }

    public InterceptionResult<int> SavingChanges(DbContextEventData eventData, InterceptionResult<int> result)
    {
        if (LockNow(eventData.Context) is var (transaction, keys))
        {
            LockAsync(transaction, keys, CancellationToken.None, sync: true).GetAwaiter().GetResult();
        }
        return result;
    }

    public async ValueTask<DbTransaction> TransactionStartedAsync(DbConnection connection, TransactionEndEventData eventData, DbTransaction result, CancellationToken cancellationToken = default)
    {
        if (TakePending(eventData.Context) is { } keys)
        {
            await LockAsync(result, keys, cancellationToken);
        }
        return result;
    }

    public DbTransaction TransactionStarted(DbConnection connection, TransactionEndEventData eventData, DbTransaction result)
    {
        if (TakePending(eventData.Context) is { } keys)
        {
            LockAsync(result, keys, CancellationToken.None, sync: true).GetAwaiter().GetResult();
        }
        return result;
    }

    /// <summary>
    /// Inside a transaction the save's gyms are locked at once; otherwise they are remembered for the transaction EF
    /// starts for the save. A save of one gym's events needs nothing: its insert trigger takes the one lock.
    /// </summary>
    private static (DbTransaction, int[])? LockNow(DbContext? context)
    {
        if (context is null || LockKeysOfNewEvents(context) is not { Length: > 1 } keys)
        {
            return null;
        }
        if (context.Database.CurrentTransaction is { } transaction)
        {
            return (transaction.GetDbTransaction(), keys);
        }
        context.Database.AutoTransactionBehavior = AutoTransactionBehavior.Always;
        Pending.AddOrUpdate(context, keys);
        return null;
    }

    private static int[]? TakePending(DbContext? context)
    {
        if (context is not null && Pending.TryGetValue(context, out var keys))
        {
            Pending.Remove(context);
            return keys;
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

    /// <summary>The lock keys of the gyms the save adds events to, in the fixed order they are taken in.</summary>
    private static int[] LockKeysOfNewEvents(DbContext context) =>
        [.. context.ChangeTracker.Entries<OutboxEvent>().Where(e => e.State == EntityState.Added).Select(e => LockKey(e.Entity.GymId)).Distinct().Order()];

    /// <summary>Takes the locks in a fixed order (by key), so two transactions that write several gyms cannot deadlock on them.</summary>
    private static async Task LockAsync(DbTransaction transaction, int[] keys, CancellationToken ct, bool sync = false)
    {
        foreach (var key in keys)
        {
            using var command = transaction.Connection!.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = $"SELECT pg_advisory_xact_lock({LockSpace}, {key})";
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

    /// <summary>
    /// A gym's lock key: the last 32 bits of its id (random in version 4 and 7 ids), as the trigger computes it
    /// (<c>('x' || right(gym_id::text, 8))::bit(32)::int</c>). Two gyms that share a key only wait for each other.
    /// </summary>
    internal static int LockKey(Guid gymId) =>
        unchecked((int)uint.Parse(gymId.ToString("N").AsSpan(24), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
}
