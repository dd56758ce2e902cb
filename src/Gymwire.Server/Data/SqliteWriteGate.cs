using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Data;

/// <summary>
/// On SQLite every writer in the process takes this lock before it writes: <c>SaveChanges</c> outside a transaction
/// (through <see cref="SqliteWriteGateInterceptor"/>), and the delivery pipeline's own write transactions (dispatcher,
/// claims, releases, the attempt recorder) explicitly. SQLite has one writer per database, and a connection that finds
/// the lock taken blocks its thread in SQLite's busy handler, sleeping 1, 2, 5, 10 … 100 ms between tries, so under
/// contention the lock sits free while its waiters sleep. Microsoft.Data.Sqlite's async calls are synchronous
/// underneath, so those sleepers are thread-pool threads, which the HTTP requests need. Awaiting the lock in process
/// costs no thread and no sleep, and the next writer starts the moment the last one commits. Another process (the
/// CLI, say) still meets the busy handler. PostgreSQL locks rows, not the database, so there it is a no-op.
/// </summary>
public sealed class SqliteWriteGate(TimeProvider clock)
{
    /// <summary>
    /// How long a <c>SaveChanges</c> waits for the lock before it fails, as SQLite's busy timeout would have: a save
    /// that waits for ever (say, on a second context while the lock is held) would hang its request silently instead.
    /// </summary>
    public static readonly TimeSpan SaveTimeout = TimeSpan.FromSeconds(30);

    private readonly SemaphoreSlim _writeLock = new(1, 1);

    /// <summary>Waits for the write lock; a <c>SaveChanges</c> on <paramref name="db"/> meanwhile does not wait again.</summary>
    public async ValueTask<WriteLock> EnterAsync(GymwireDbContext db, CancellationToken ct)
    {
        if (db.Provider != DatabaseProvider.Sqlite)
        {
            return default;
        }
        await _writeLock.WaitAsync(ct);
        db.WriteLockState = WriteLockState.Held;
        return new WriteLock(_writeLock, db);
    }

    /// <summary>For a synchronous <c>SaveChanges</c> (Data Protection's key store, say): waits on this thread, not through the async path.</summary>
    internal void EnterSave(GymwireDbContext db)
    {
        using var timeout = new CancellationTokenSource(SaveTimeout, clock);
        try
        {
            _writeLock.Wait(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            throw TimedOut();
        }
        HeldForSave(db);
    }

    internal async Task EnterSaveAsync(GymwireDbContext db, CancellationToken ct)
    {
        using var timeout = new CancellationTokenSource(SaveTimeout, clock);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            await _writeLock.WaitAsync(wait.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            throw TimedOut();
        }
        HeldForSave(db);
    }

    /// <summary>
    /// The context remembers the gate, so that disposing it gives back a lock its save never did: EF Core reports
    /// neither failure nor cancellation of a save that throws before it writes (in <c>DetectChanges</c>, or in a
    /// <c>SavingChanges</c> interceptor after this one), and such a lock would otherwise stop every writer in the
    /// process for good.
    /// </summary>
    private void HeldForSave(GymwireDbContext db)
    {
        db.WriteLockState = WriteLockState.HeldForSave;
        db.SaveLockGate = this;
    }

    private static TimeoutException TimedOut() => new($"The SQLite write lock was not free within {SaveTimeout.TotalSeconds:0} s.");

    /// <summary>Gives back the lock <c>SaveChanges</c> took; called on every way out of it, so it may find none.</summary>
    internal void LeaveSave(GymwireDbContext db)
    {
        if (db.WriteLockState == WriteLockState.HeldForSave)
        {
            db.WriteLockState = WriteLockState.None;
            db.SaveLockGate = null;
            _writeLock.Release();
        }
    }

    /// <summary>The gate held until disposed.</summary>
    public readonly struct WriteLock(SemaphoreSlim? held, GymwireDbContext? db) : IDisposable
    {
        public void Dispose()
        {
            if (held is not null)
            {
                db!.WriteLockState = WriteLockState.None;
                held.Release();
            }
        }
    }
}

/// <summary>Whether a context holds <see cref="SqliteWriteGate"/>'s lock: for an explicit hold of its own, or for a <c>SaveChanges</c> (which gives it back).</summary>
internal enum WriteLockState
{
    None,
    Held,
    HeldForSave,
}

/// <summary>
/// Gives a SQLite <c>SaveChanges</c> that opens its own transaction the lock of <see cref="SqliteWriteGate"/> for its
/// duration. One inside a transaction the caller began is left alone: that transaction took SQLite's write lock at
/// <c>BEGIN</c> (Microsoft.Data.Sqlite begins <c>IMMEDIATE</c>), and waiting for the gate while holding it could
/// deadlock with a gate holder waiting for the lock.
/// </summary>
internal sealed class SqliteWriteGateInterceptor(SqliteWriteGate gate) : SaveChangesInterceptor
{
    public override InterceptionResult<int> SavingChanges(DbContextEventData eventData, InterceptionResult<int> result)
    {
        if (Gated(eventData) is { } db)
        {
            gate.EnterSave(db);
        }
        return result;
    }

    public override async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        if (Gated(eventData) is { } db)
        {
            await gate.EnterSaveAsync(db, cancellationToken);
        }
        return result;
    }

    public override int SavedChanges(SaveChangesCompletedEventData eventData, int result)
    {
        Leave(eventData);
        return result;
    }

    public override ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        Leave(eventData);
        return ValueTask.FromResult(result);
    }

    public override void SaveChangesFailed(DbContextErrorEventData eventData) => Leave(eventData);

    public override Task SaveChangesFailedAsync(DbContextErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        Leave(eventData);
        return Task.CompletedTask;
    }

    public override void SaveChangesCanceled(DbContextEventData eventData) => Leave(eventData);

    public override Task SaveChangesCanceledAsync(DbContextEventData eventData, CancellationToken cancellationToken = default)
    {
        Leave(eventData);
        return Task.CompletedTask;
    }

    private static GymwireDbContext? Gated(DbContextEventData eventData) =>
        eventData.Context is GymwireDbContext { Provider: DatabaseProvider.Sqlite, WriteLockState: WriteLockState.None } db && db.Database.CurrentTransaction is null ? db : null;

    private void Leave(DbContextEventData eventData)
    {
        if (eventData.Context is GymwireDbContext db)
        {
            gate.LeaveSave(db);
        }
    }
}
