using System.Data.Common;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Tests.Sms;

/// <summary>
/// Once armed, holds the reads of one SMS message until a given number of them have arrived, so that concurrent
/// requests all read the message before any of them writes it: the interleaving a lucky schedule gives only sometimes.
/// </summary>
public sealed class SmsReadBarrier : DbCommandInterceptor
{
    private readonly Lock _lock = new();
    private Guid _id;
    private int _remaining;
    private TaskCompletionSource _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Arm(Guid id, int readers)
    {
        lock (_lock)
        {
            _id = id;
            _remaining = readers;
            _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    // After the command ran, so each reader has its row in hand before any request may go on to write.
    public override async ValueTask<DbDataReader> ReaderExecutedAsync(
        DbCommand command, CommandExecutedEventData eventData, DbDataReader result, CancellationToken cancellationToken = default)
    {
        if (Join(command) is { } arrived)
        {
            // Bounded, so that code which reads the message fewer times fails its test instead of hanging it.
            await arrived.WaitAsync(TimeSpan.FromSeconds(20), cancellationToken);
        }
        return result;
    }

    private Task? Join(DbCommand command)
    {
        lock (_lock)
        {
            if (_remaining == 0 || !command.CommandText.Contains("sms_messages", StringComparison.Ordinal)
                || !command.Parameters.Cast<DbParameter>().Any(p => p.Value is Guid g && g == _id || p.Value is string s && Guid.TryParse(s, out var parsed) && parsed == _id))
            {
                return null;
            }
            if (--_remaining == 0)
            {
                _arrived.TrySetResult();
            }
            return _arrived.Task;
        }
    }
}
