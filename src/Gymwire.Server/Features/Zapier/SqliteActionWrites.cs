using System.Runtime.ExceptionServices;
using Gymwire.Data;

namespace Gymwire.Features.Zapier;

/// <summary>
/// On SQLite, the new rows of actions waiting together for the one writer go in one transaction and one commit, not
/// one each; a failed batch is written again action by action, so only the failing action sees its error. Not on
/// PostgreSQL, where writers run side by side and a batch would make every action wait for the slowest.
/// </summary>
public sealed class SqliteActionWrites(IServiceScopeFactory scopes)
{
    /// <summary>Actions written per transaction at most, so one commit stays short.</summary>
    public const int MaxActionsPerBatch = 32;

    private readonly Lock _lock = new();
    private readonly Queue<Pending> _queue = new();
    // True while an action writes a batch or has been handed the next; the queue is empty whenever this is false.
    private bool _writing;

    private sealed class Pending(IReadOnlyList<object> rows)
    {
        public IReadOnlyList<object> Rows { get; } = rows;

        /// <summary>True: written by another action's batch. False: this action writes the next batch.</summary>
        public TaskCompletionSource<bool> Outcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Inserts <paramref name="rows"/> (new entities) in one transaction, with those of other actions waiting.</summary>
    public async Task SaveAsync(IReadOnlyList<object> rows)
    {
        var mine = new Pending(rows);
        bool lead;
        lock (_lock)
        {
            _queue.Enqueue(mine);
            lead = !_writing;
            _writing = true;
        }
        if (!lead && await mine.Outcome.Task)
        {
            return;
        }
        await WriteBatchAsync(mine);
    }

    // Called by the action at the head of the queue: the batch always holds its own rows.
    private async Task WriteBatchAsync(Pending mine)
    {
        List<Pending> batch;
        lock (_lock)
        {
            batch = new List<Pending>(Math.Min(_queue.Count, MaxActionsPerBatch));
            while (batch.Count < MaxActionsPerBatch && _queue.TryDequeue(out var next))
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
            Pending? head = null;
            lock (_lock)
            {
                if (!_queue.TryPeek(out head))
                {
                    _writing = false;
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
        db.AddRange(rows);
        await db.SaveChangesAsync(CancellationToken.None);
    }
}
