using System.Runtime.ExceptionServices;
using Gymwire.Data;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Features.Zapier;

/// <summary>
/// The new rows of actions waiting together go in one transaction and one commit, not one each; a failed batch is
/// written again action by action, so only the failing action sees its error. Actions wait together where they would
/// queue anyway: on SQLite for its one writer (one queue for all), on PostgreSQL for their gym's event-order lock (a
/// queue per gym, so one gym's writes never wait for another's).
/// </summary>
public sealed class ActionWrites(IServiceScopeFactory scopes)
{
    /// <summary>Actions written per transaction at most, so one commit stays short.</summary>
    public const int MaxActionsPerBatch = 32;

    private readonly Lock _lock = new();
    // A queue while an action writes a batch of it or has been handed the next; gone when empty.
    private readonly Dictionary<Guid, Queue<Pending>> _queues = [];

    private sealed class Pending(IReadOnlyList<object> rows)
    {
        public IReadOnlyList<object> Rows { get; } = rows;

        /// <summary>True: written by another action's batch. False: this action writes the next batch.</summary>
        public TaskCompletionSource<bool> Outcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Actions queued behind a batch being written now, in every queue (for tests).</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _queues.Values.Sum(q => q.Count);
            }
        }
    }

    /// <summary>
    /// Inserts <paramref name="rows"/> (new entities) in one transaction, with those of other actions waiting in the
    /// same <paramref name="queue"/>.
    /// </summary>
    public async Task SaveAsync(Guid queue, IReadOnlyList<object> rows)
    {
        var mine = new Pending(rows);
        bool lead;
        lock (_lock)
        {
            lead = !_queues.TryGetValue(queue, out var waiting);
            if (lead)
            {
                _queues[queue] = [];
            }
            else
            {
                waiting!.Enqueue(mine);
            }
        }
        if (!lead && await mine.Outcome.Task)
        {
            return;
        }
        await WriteBatchAsync(queue, mine);
    }

    // Called by the action at the head of the queue, which is not in it: the batch always holds its own rows.
    private async Task WriteBatchAsync(Guid queue, Pending mine)
    {
        List<Pending> batch = [mine];
        lock (_lock)
        {
            var waiting = _queues[queue];
            while (batch.Count < MaxActionsPerBatch && waiting.TryDequeue(out var next))
            {
                batch.Add(next);
            }
        }
        Exception? own = null;
        try
        {
            // The batch is written for every action in it: one request's cancellation must not undo the others'.
            if (batch.Count == 1)
            {
                await InsertAsync(mine.Rows);
            }
            else
            {
                try
                {
                    await InsertAsync([.. batch.SelectMany(p => p.Rows)]);
                }
                catch (Exception)
                {
                    foreach (var pending in batch)
                    {
                        try
                        {
                            await InsertAsync(pending.Rows);
                        }
                        catch (Exception e) when (pending != mine)
                        {
                            pending.Outcome.TrySetException(e);
                        }
                        catch (Exception e)
                        {
                            own = e;
                        }
                    }
                }
            }
        }
        catch (Exception e)
        {
            own = e;
            foreach (var pending in batch)
            {
                if (pending != mine)
                {
                    pending.Outcome.TrySetException(e);
                }
            }
        }
        finally
        {
            foreach (var pending in batch)
            {
                if (pending != mine)
                {
                    pending.Outcome.TrySetResult(true);
                }
            }
            // The next batch's writer leaves the queue; an empty queue goes, and the next action to come leads.
            Pending? head = null;
            lock (_lock)
            {
                if (!_queues[queue].TryDequeue(out head))
                {
                    _queues.Remove(queue);
                }
            }
            head?.Outcome.TrySetResult(false);
        }
        if (own is not null)
        {
            ExceptionDispatchInfo.Throw(own);
        }
    }

    private async Task InsertAsync(IReadOnlyList<object> rows)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        if (db.Provider == DatabaseProvider.Postgres)
        {
            // The inserts go as one batch, which PostgreSQL runs as one implicit transaction (if one fails, none stays)
            // and commits before it answers: no BEGIN or COMMIT round trip. SQLite runs statements one by one, so it
            // keeps its transaction.
            db.Database.AutoTransactionBehavior = AutoTransactionBehavior.Never;
        }
        db.AddRange(rows);
        await db.SaveChangesAsync(CancellationToken.None);
    }
}
