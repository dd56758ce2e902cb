using System.Collections.Concurrent;
using System.Data.Common;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Bench;

/// <summary>Counts the SQL commands Gymwire sends, so a figure can say how many round trips one operation costs.</summary>
internal sealed partial class CommandCounter : DbCommandInterceptor, IDbTransactionInterceptor
{
    private long _count;
    private long _transactions;

    // While attributing, commands by kind (verb and first table), so a per-request figure can say where its commands go.
    private volatile ConcurrentDictionary<string, long>? _byKind;

    // While timing, each query read to its end: its text, parameters and time from execution to the reader's disposal.
    private volatile ConcurrentQueue<TimedCommand>? _timed;

    public long Count => Interlocked.Read(ref _count);

    /// <summary>Starts recording each query's time (execution and reading); <see cref="StopTiming"/> returns them.</summary>
    public void StartTiming() => _timed = new ConcurrentQueue<TimedCommand>();

    public IReadOnlyList<TimedCommand> StopTiming()
    {
        var timed = _timed?.ToList() ?? [];
        _timed = null;
        return timed;
    }

    public override InterceptionResult DataReaderDisposing(DbCommand command, DataReaderDisposingEventData eventData, InterceptionResult result)
    {
        _timed?.Enqueue(new TimedCommand(command.CommandText,
            command.Parameters.Cast<DbParameter>().Select(p => (p.ParameterName, p.Value)).ToList(), eventData.Duration));
        return result;
    }

    /// <summary>Explicit transactions begun through EF Core (each a BEGIN and a COMMIT or ROLLBACK besides the commands).</summary>
    public long Transactions => Interlocked.Read(ref _transactions);

    /// <summary>Starts counting commands by kind; <see cref="StopAttributing"/> returns the counts.</summary>
    public void StartAttributing() => _byKind = new ConcurrentDictionary<string, long>();

    public IReadOnlyDictionary<string, long> StopAttributing()
    {
        var counts = _byKind ?? new ConcurrentDictionary<string, long>();
        _byKind = null;
        return counts;
    }

    private void Counted(DbCommand command)
    {
        Interlocked.Increment(ref _count);
        if (_byKind is { } byKind)
        {
            byKind.AddOrUpdate(Kind(command.CommandText), 1, (_, n) => n + 1);
        }
    }

    // "INSERT leads", "SELECT outbox_events", "UPDATE outbox_events", or the statement's first word.
    private static string Kind(string sql)
    {
        var verb = VerbPattern().Match(sql) is { Success: true } v ? v.Value.ToUpperInvariant() : "?";
        var table = TablePattern().Match(sql) is { Success: true } t ? " " + t.Groups[1].Value : "";
        return verb + table;
    }

    [GeneratedRegex(@"\b(SELECT|INSERT|UPDATE|DELETE|WITH|SET|PRAGMA)\b", RegexOptions.IgnoreCase)]
    private static partial Regex VerbPattern();

    [GeneratedRegex(@"(?:INTO|FROM|UPDATE)\s+""?(\w+)""?", RegexOptions.IgnoreCase)]
    private static partial Regex TablePattern();

    public DbTransaction TransactionStarted(DbConnection connection, TransactionEndEventData eventData, DbTransaction result)
    {
        Interlocked.Increment(ref _transactions);
        return result;
    }

    public ValueTask<DbTransaction> TransactionStartedAsync(DbConnection connection, TransactionEndEventData eventData, DbTransaction result, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _transactions);
        return ValueTask.FromResult(result);
    }

    public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
    {
        Counted(command);
        return ValueTask.FromResult(result);
    }

    public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        Counted(command);
        return ValueTask.FromResult(result);
    }

    public override ValueTask<InterceptionResult<object>> ScalarExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<object> result, CancellationToken cancellationToken = default)
    {
        Counted(command);
        return ValueTask.FromResult(result);
    }

    public override InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result)
    {
        Counted(command);
        return result;
    }

    public override InterceptionResult<int> NonQueryExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<int> result)
    {
        Counted(command);
        return result;
    }

    public override InterceptionResult<object> ScalarExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<object> result)
    {
        Counted(command);
        return result;
    }
}

/// <summary>A query Gymwire ran, and how long it took to execute and read.</summary>
internal sealed record TimedCommand(string Sql, IReadOnlyList<(string Name, object? Value)> Parameters, TimeSpan Duration);
