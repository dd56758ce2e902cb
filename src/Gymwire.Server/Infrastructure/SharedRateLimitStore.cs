using System.Collections.Concurrent;
using Gymwire.Data;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gymwire.Infrastructure;

/// <summary>
/// <see cref="IRateLimitStore"/> in PostgreSQL, so every node counts against one sliding window per key, counted by
/// <c>gymwire_rate_limit_acquire</c> (the <c>RateLimitLeases</c> migration) over UNLOGGED tables since losing
/// the windows in a crash costs at most one extra window. Time is the node's <see cref="TimeProvider"/>, so one fake
/// clock drives every node in tests. When the database fails a check, this node's <see cref="InMemoryRateLimitStore"/>
/// counts instead for <see cref="RetryAfterFailure"/> (fail open to the per-node limit), logged once each way.
/// <para>
/// A limit of at least <see cref="LeaseFrom"/> a window is leased: a node takes up to a thousandth of it (at most
/// <see cref="MaxLease"/>) in one call and admits from that lease for <see cref="LeaseTime"/>, so a busy key costs one
/// round trip per lease instead of one per request. The lease is counted in full when taken and stamped at the end of
/// its time, so the cluster never admits more than the limit; a node's unused rest of a lease is given back when it
/// takes the next one (until then it counts, stricter). The documented limits are far below that, so each of their
/// permits is taken when a request asks for it, and they are exact.
/// </para>
/// <para>
/// Checks of one key wait for each other in the database anyway (the key's row is locked), so a node makes one call
/// per key at a time, for every check of it that arrived meanwhile: a burst of a hundred requests of one gym costs a
/// few calls and one connection, not a hundred connections queued on one row lock.
/// </para>
/// </summary>
public sealed partial class PostgresRateLimitStore : IRateLimitStore, IAsyncDisposable
{
    /// <summary>How long checks stay local after the shared store failed, before it is tried again.</summary>
    public static readonly TimeSpan RetryAfterFailure = TimeSpan.FromSeconds(5);

    /// <summary>
    /// A check that takes longer than this is abandoned for the local limiter: a poll must not hang on it. Generous,
    /// because checks of one key wait for each other: a burst of a hundred concurrent requests of one gym queues.
    /// </summary>
    public const int CommandTimeoutSeconds = 10;

    /// <summary>How long opening a connection may take before the shared store counts as unreachable.</summary>
    public const int ConnectTimeoutSeconds = 5;

    /// <summary>The smallest limit that is leased; below it every request is one check.</summary>
    public const int LeaseFrom = 2000;

    /// <summary>The most permits one lease takes.</summary>
    public const int MaxLease = 4096;

    /// <summary>How long a node admits from a lease before it asks again.</summary>
    public static readonly TimeSpan LeaseTime = TimeSpan.FromSeconds(1);

    private const string AcquireSql = "SELECT granted, oldest FROM gymwire_rate_limit_acquire($1, $2, $3, $4, $5, $6, $7)";
    private const string ReleaseSql = "SELECT gymwire_rate_limit_release($1, $2, $3)";

    private readonly NpgsqlDataSource _dataSource;
    private readonly InMemoryRateLimitStore _local;
    private readonly TimeProvider _clock;
    private readonly ILogger<PostgresRateLimitStore> _logger;
    private readonly Lock _state = new();
    private DateTimeOffset? _localUntil;
    private volatile bool _fallenBack;
    private readonly ConcurrentDictionary<string, Lease> _leases = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, KeyChecks> _checks = new(StringComparer.Ordinal);

    /// <summary>The checks of one key waiting for this node's next call, and whether a call is running.</summary>
    private sealed class KeyChecks
    {
        public readonly Lock Gate = new();
        public List<TaskCompletionSource<RateLimitDecision>> Waiting = [];
        public bool Calling;
    }

    /// <summary>Permits a node took for one key in one call and admits from until <see cref="Until"/>.</summary>
    private sealed class Lease
    {
        public readonly SemaphoreSlim Renewal = new(1, 1);
        public readonly Lock Gate = new();
        public long Permit;
        public int Left;
        public int Size = 1;
        public DateTimeOffset Until;

        /// <summary>Takes a permit of the lease; <paramref name="permit"/> names it for a release.</summary>
        public bool TryTake(DateTimeOffset now, out long permit)
        {
            lock (Gate)
            {
                if (Left <= 0 || now >= Until)
                {
                    permit = 0;
                    return false;
                }
                Left--;
                permit = Permit;
                return true;
            }
        }
    }

    public PostgresRateLimitStore(IConfiguration configuration, TimeProvider clock, ILogger<PostgresRateLimitStore> logger)
    {
        var builder = new NpgsqlConnectionStringBuilder(DatabaseSetup.WithPostgresDefaults(configuration.GetConnectionString(DatabaseSetup.ConnectionStringName)!))
        {
            ApplicationName = "gymwire rate limits",
            CommandTimeout = CommandTimeoutSeconds,
            Timeout = ConnectTimeoutSeconds,
        };
        _dataSource = NpgsqlDataSource.Create(builder.ConnectionString);
        _local = new InMemoryRateLimitStore(clock);
        _clock = clock;
        _logger = logger;
    }

    /// <summary>True while checks go to the local limiter because the shared store failed.</summary>
    public bool FallenBack => _fallenBack;

    public ValueTask<RateLimitDecision> TryAcquireAsync(string key, int limit, TimeSpan window, CancellationToken ct)
    {
        // Most checks of a leased limit take a permit of this node's lease: answered here, with no call and no task.
        if (limit >= LeaseFrom && !_fallenBack && _leases.TryGetValue(key, out var lease) && lease.TryTake(_clock.GetUtcNow(), out var permit))
        {
            // The permit read with the take: a renewal may replace the lease's permit right after it.
            return ValueTask.FromResult(new RateLimitDecision(true, key, permit, TimeSpan.Zero));
        }
        return AcquireAsync(key, limit, window, ct);
    }

    private async ValueTask<RateLimitDecision> AcquireAsync(string key, int limit, TimeSpan window, CancellationToken ct)
    {
        var now = _clock.GetUtcNow();
        if (!UseShared(now))
        {
            return Local(await _local.TryAcquireAsync(key, limit, window, ct));
        }
        try
        {
            return limit < LeaseFrom ? await AcquireOneAsync(key, limit, window, ct) : await AcquireLeasedAsync(key, limit, window, now, ct);
        }
        catch (StoreFailedMeanwhileException)
        {
            return Local(await _local.TryAcquireAsync(key, limit, window, ct));
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException && !ct.IsCancellationRequested)
        {
            Failed(now, e);
            return Local(await _local.TryAcquireAsync(key, limit, window, ct));
        }
    }

    /// <summary>A check that waited for a call to the store while another call found it failing: it goes to the local limiter.</summary>
    private sealed class StoreFailedMeanwhileException() : Exception("The shared rate-limit store failed while this check waited");

    private async Task<RateLimitDecision> AcquireOneAsync(string key, int limit, TimeSpan window, CancellationToken ct)
    {
        var checks = _checks.GetOrAdd(key, _ => new KeyChecks());
        var done = new TaskCompletionSource<RateLimitDecision>(TaskCreationOptions.RunContinuationsAsynchronously);
        bool call;
        lock (checks.Gate)
        {
            checks.Waiting.Add(done);
            call = !checks.Calling;
            checks.Calling = true;
        }
        if (call)
        {
            _ = CallForWaitingAsync(key, limit, window, checks);
        }
        return await done.Task.WaitAsync(ct);
    }

    /// <summary>
    /// Asks for as many permits as checks wait, until none waits. All granted permits are one row, stamped now (each
    /// admitted request releases one of them); checks beyond the grant wait for the next call, which denies them with
    /// the window's Retry-After unless permits were given back meanwhile.
    /// </summary>
    private async Task CallForWaitingAsync(string key, int limit, TimeSpan window, KeyChecks checks)
    {
        while (true)
        {
            List<TaskCompletionSource<RateLimitDecision>> batch;
            lock (checks.Gate)
            {
                if (checks.Waiting.Count == 0)
                {
                    checks.Calling = false;
                    return;
                }
                batch = checks.Waiting;
                checks.Waiting = [];
            }
            if (!UseShared(_clock.GetUtcNow()))
            {
                // The call before this one failed (a timeout, say): the checks that queued behind it go to the local
                // limiter now, as the documented fail-open promises, rather than wait out a call of their own.
                foreach (var done in batch)
                {
                    done.TrySetException(new StoreFailedMeanwhileException());
                }
                continue;
            }
            try
            {
                var permit = NewPermit();
                var now = _clock.GetUtcNow();
                // Not the requests' tokens: the call serves every check in the batch; CommandTimeout bounds it.
                var (granted, retryAfter) = await CallAcquireAsync(key, limit, window, now, now, permit, batch.Count, CancellationToken.None);
                for (var i = 0; i < granted; i++)
                {
                    batch[i].TrySetResult(new RateLimitDecision(true, key, permit, TimeSpan.Zero));
                }
                if (granted == 0)
                {
                    foreach (var done in batch)
                    {
                        done.TrySetResult(new RateLimitDecision(false, key, 0, retryAfter));
                    }
                }
                else if (granted < batch.Count)
                {
                    lock (checks.Gate)
                    {
                        checks.Waiting.InsertRange(0, batch.Skip(granted));
                    }
                }
            }
            catch (Exception e)
            {
                if (e is NpgsqlException or TimeoutException)
                {
                    // Here, not only in the checks' own handlers (which run later): the next pass must see it.
                    Failed(_clock.GetUtcNow(), e);
                }
                foreach (var done in batch)
                {
                    done.TrySetException(e);
                }
            }
        }
    }

    private async Task<RateLimitDecision> AcquireLeasedAsync(string key, int limit, TimeSpan window, DateTimeOffset now, CancellationToken ct)
    {
        var lease = _leases.GetOrAdd(key, _ => new Lease());
        if (lease.TryTake(now, out var taken))
        {
            return new RateLimitDecision(true, key, taken, TimeSpan.Zero);
        }
        await lease.Renewal.WaitAsync(ct);
        try
        {
            // Another request may have renewed it while this one waited.
            now = _clock.GetUtcNow();
            if (lease.TryTake(now, out taken))
            {
                return new RateLimitDecision(true, key, taken, TimeSpan.Zero);
            }
            int unused;
            lock (lease.Gate)
            {
                unused = Math.Max(0, lease.Left);
                lease.Left = 0;
            }
            if (unused > 0)
            {
                await CallReleaseAsync(key, lease.Permit, unused, ct);
            }
            // A lease used up within its time doubles the next one; one that ran out of time halves it.
            if (lease.Until != default)
            {
                lease.Size = unused == 0 ? Math.Min(lease.Size * 2, MaxLease) : Math.Max(1, lease.Size / 2);
            }
            var wanted = Math.Clamp(Math.Min(lease.Size, limit / 1000), 1, MaxLease);
            var permit = NewPermit();
            var until = now + LeaseTime;
            var (granted, retryAfter) = await CallAcquireAsync(key, limit, window, now, until, permit, wanted, ct);
            if (granted == 0)
            {
                return new RateLimitDecision(false, key, 0, retryAfter);
            }
            lock (lease.Gate)
            {
                lease.Permit = permit;
                lease.Left = granted - 1;
                lease.Until = until;
            }
            return new RateLimitDecision(true, key, permit, TimeSpan.Zero);
        }
        finally
        {
            lease.Renewal.Release();
        }
    }

    /// <summary>
    /// Takes up to <paramref name="wanted"/> permits stamped <paramref name="stamp"/>; returns how many were granted, or
    /// none and the time until the oldest permit of the window is free.
    /// </summary>
    private async Task<(int Granted, TimeSpan RetryAfter)> CallAcquireAsync(
        string key, int limit, TimeSpan window, DateTimeOffset now, DateTimeOffset stamp, long permit, int wanted, CancellationToken ct)
    {
        await using var command = _dataSource.CreateCommand(AcquireSql);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = now.UtcDateTime });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = window });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = permit });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = wanted });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = stamp.UtcDateTime });
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        var granted = reader.GetInt32(0);
        Recovered();
        if (granted > 0)
        {
            return (granted, TimeSpan.Zero);
        }
        var oldest = reader.IsDBNull(1) ? now.UtcDateTime : reader.GetFieldValue<DateTime>(1);
        var retryAfter = oldest + window - now.UtcDateTime;
        return (0, retryAfter > TimeSpan.Zero ? retryAfter : TimeSpan.Zero);
    }

    private async Task CallReleaseAsync(string key, long permit, int count, CancellationToken ct)
    {
        await using var command = _dataSource.CreateCommand(ReleaseSql);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = permit });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = count });
        await command.ExecuteNonQueryAsync(ct);
    }

    private static long NewPermit() => Random.Shared.NextInt64(1, long.MaxValue);

    public async ValueTask ReleaseAsync(string key, long permit, CancellationToken ct)
    {
        if (permit < 0)
        {
            // Taken from the local limiter while the shared store was down (see Local).
            await _local.ReleaseAsync(key, -permit, ct);
            return;
        }
        try
        {
            await CallReleaseAsync(key, permit, 1, ct);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException && !ct.IsCancellationRequested)
        {
            // The permit stays taken until it ages out of its window: stricter, never looser.
            Failed(_clock.GetUtcNow(), e);
        }
    }

    /// <summary>
    /// Forgets the windows of keys with nothing admitted within their window (idle gyms and users cost no rows).
    /// Run now and then by every node (<c>ClusterHeartbeat</c>); concurrent runs are harmless.
    /// </summary>
    public async Task SweepAsync(CancellationToken ct)
    {
        var idle = _clock.GetUtcNow() - TimeSpan.FromMinutes(1);
        foreach (var (key, lease) in _leases)
        {
            // An idle key's lease: its unused rest stays counted until it ages out of the window (stricter).
            if (lease.Until < idle)
            {
                _leases.TryRemove(new KeyValuePair<string, Lease>(key, lease));
            }
        }
        foreach (var (key, checks) in _checks)
        {
            lock (checks.Gate)
            {
                if (!checks.Calling)
                {
                    // A check holding this entry still works on it; the next one of the key makes a new entry.
                    _checks.TryRemove(new KeyValuePair<string, KeyChecks>(key, checks));
                }
            }
        }
        await using var command = _dataSource.CreateCommand("SELECT gymwire_rate_limit_sweep($1)");
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = _clock.GetUtcNow().UtcDateTime });
        await command.ExecuteNonQueryAsync(ct);
    }

    public ValueTask DisposeAsync() => _dataSource.DisposeAsync();

    /// <summary>Local permits are negative, so that a release finds the store that gave them.</summary>
    private static RateLimitDecision Local(RateLimitDecision decision) => decision.Admitted ? decision with { Permit = -decision.Permit } : decision;

    private bool UseShared(DateTimeOffset now)
    {
        if (!_fallenBack)
        {
            return true;
        }
        lock (_state)
        {
            return _localUntil is not { } until || now >= until;
        }
    }

    private void Failed(DateTimeOffset now, Exception e)
    {
        bool first;
        lock (_state)
        {
            first = _localUntil is null;
            _localUntil = now + RetryAfterFailure;
            _fallenBack = true;
        }
        if (first)
        {
            LogFellBack(_logger, RetryAfterFailure, e);
        }
    }

    private void Recovered()
    {
        if (!_fallenBack)
        {
            return;
        }
        bool was;
        lock (_state)
        {
            was = _localUntil is not null;
            _localUntil = null;
            _fallenBack = false;
        }
        if (was)
        {
            LogRecovered(_logger);
        }
    }

    [LoggerMessage(EventId = 1301, Level = LogLevel.Warning,
        Message = "The shared rate-limit store failed; this node counts limits on its own (each node admits the full limit) and retries the shared store every {Retry}")]
    private static partial void LogFellBack(ILogger logger, TimeSpan retry, Exception exception);

    [LoggerMessage(EventId = 1302, Level = LogLevel.Information, Message = "The shared rate-limit store answers again; limits are counted for the cluster")]
    private static partial void LogRecovered(ILogger logger);
}
