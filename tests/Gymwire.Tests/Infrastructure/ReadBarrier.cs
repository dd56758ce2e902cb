using System.Data.Common;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Tests.Infrastructure;

/// <summary>
/// Once armed, holds the reads of one table that carry one parameter value (a row's id, say) until a given number of
/// them have run, so that concurrent requests all read before any of them writes: the interleaving a lucky schedule
/// gives only sometimes. With more rounds, it does that again for each of the readers' next reads. Unarmed, it lets
/// everything through.
/// </summary>
public sealed class ReadBarrier : DbCommandInterceptor
{
    private readonly Lock _lock = new();
    private string _table = "";
    private object? _value;
    private int _readers;
    private int _remaining;
    private int _rounds;
    private TaskCompletionSource _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Arm(string table, object value, int readers, int rounds = 1)
    {
        lock (_lock)
        {
            _table = table;
            _value = value;
            _readers = readers;
            _remaining = readers;
            _rounds = rounds;
            _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    // After the command ran, so each reader has its rows in hand before any request may go on to write.
    public override async ValueTask<DbDataReader> ReaderExecutedAsync(
        DbCommand command, CommandExecutedEventData eventData, DbDataReader result, CancellationToken cancellationToken = default)
    {
        if (Join(command) is { } arrived)
        {
            // Bounded, so that code which reads fewer times fails its test instead of hanging it.
            await arrived.WaitAsync(TimeSpan.FromSeconds(20), cancellationToken);
        }
        return result;
    }

    private Task? Join(DbCommand command)
    {
        lock (_lock)
        {
            if (_remaining == 0 || !command.CommandText.Contains(_table, StringComparison.Ordinal)
                || !command.Parameters.Cast<DbParameter>().Any(p => Equals(p.Value, _value)))
            {
                return null;
            }
            var arrived = _arrived.Task;
            if (--_remaining == 0)
            {
                _arrived.TrySetResult();
                if (--_rounds > 0)
                {
                    _remaining = _readers;
                    _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
                }
            }
            return arrived;
        }
    }
}
