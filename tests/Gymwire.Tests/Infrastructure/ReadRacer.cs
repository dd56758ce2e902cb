using System.Data.Common;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Tests.Infrastructure;

/// <summary>
/// Once armed, runs one write just before and another just after each of the next few reads (SELECTs) of one table
/// that carry one parameter value (a row's id, say): a concurrent writer that changes the row under every read, so
/// that the reader's write always finds it changed since, as a busy client would only now and then. Unarmed, or once
/// its reads are spent, it lets everything through.
/// </summary>
public sealed class ReadRacer : DbCommandInterceptor
{
    private readonly Lock _lock = new();
    private readonly HashSet<DbCommand> _raced = [];
    private string _table = "";
    private object? _value;
    private int _remaining;
    private Func<Task> _before = () => Task.CompletedTask;
    private Func<Task> _after = () => Task.CompletedTask;

    /// <summary>The racer's own writes go through the same interceptors: they are never raced.</summary>
    private static readonly AsyncLocal<bool> Racing = new();

    public void Arm(string table, object value, int reads, Func<Task> before, Func<Task> after)
    {
        lock (_lock)
        {
            (_table, _value, _remaining, _before, _after) = (table, value, reads, before, after);
        }
    }

    public override async ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
    {
        if (Take(command) is { } before)
        {
            await RunAsync(before);
        }
        return result;
    }

    public override async ValueTask<DbDataReader> ReaderExecutedAsync(
        DbCommand command, CommandExecutedEventData eventData, DbDataReader result, CancellationToken cancellationToken = default)
    {
        Func<Task>? after;
        lock (_lock)
        {
            after = _raced.Remove(command) ? _after : null;
        }
        if (after is not null)
        {
            await RunAsync(after);
        }
        return result;
    }

    private Func<Task>? Take(DbCommand command)
    {
        if (Racing.Value)
        {
            return null;
        }
        lock (_lock)
        {
            if (_remaining == 0 || !command.CommandText.TrimStart().StartsWith("SELECT", StringComparison.OrdinalIgnoreCase)
                || !command.CommandText.Contains(_table, StringComparison.Ordinal)
                || !command.Parameters.Cast<DbParameter>().Any(p => Equals(p.Value, _value)))
            {
                return null;
            }
            _remaining--;
            _raced.Add(command);
            return _before;
        }
    }

    private static async Task RunAsync(Func<Task> write)
    {
        Racing.Value = true;
        try
        {
            await write();
        }
        finally
        {
            Racing.Value = false;
        }
    }
}
