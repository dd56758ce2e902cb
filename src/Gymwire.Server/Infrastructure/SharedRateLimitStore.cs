using Gymwire.Data;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gymwire.Infrastructure;

/// <summary>
/// <see cref="IRateLimitStore"/> in PostgreSQL, so every node counts against one sliding window per key: one call of
/// <c>gymwire_rate_limit_acquire</c> (the <c>ClusterNodes</c> migration) per check, over UNLOGGED tables since losing
/// the windows in a crash costs at most one extra window. Time is the node's <see cref="TimeProvider"/>, so one fake
/// clock drives every node in tests. When the database fails a check, this node's <see cref="InMemoryRateLimitStore"/>
/// counts instead for <see cref="RetryAfterFailure"/> (fail open to the per-node limit), logged once each way.
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

    private const string AcquireSql = "SELECT admitted, oldest FROM gymwire_rate_limit_acquire($1, $2, $3, $4, $5)";
    private const string ReleaseSql = "SELECT gymwire_rate_limit_release($1, $2)";

    private readonly NpgsqlDataSource _dataSource;
    private readonly InMemoryRateLimitStore _local;
    private readonly TimeProvider _clock;
    private readonly ILogger<PostgresRateLimitStore> _logger;
    private readonly Lock _state = new();
    private DateTimeOffset? _localUntil;
    private volatile bool _fallenBack;

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

    public async ValueTask<RateLimitDecision> TryAcquireAsync(string key, int limit, TimeSpan window, CancellationToken ct)
    {
        var now = _clock.GetUtcNow();
        if (!UseShared(now))
        {
            return Local(await _local.TryAcquireAsync(key, limit, window, ct));
        }
        var permit = Random.Shared.NextInt64(1, long.MaxValue);
        try
        {
            await using var command = _dataSource.CreateCommand(AcquireSql);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
            command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = now.UtcDateTime });
            command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = window });
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = permit });
            await using var reader = await command.ExecuteReaderAsync(ct);
            await reader.ReadAsync(ct);
            var admitted = reader.GetBoolean(0);
            Recovered();
            if (admitted)
            {
                return new RateLimitDecision(true, key, permit, TimeSpan.Zero);
            }
            var oldest = reader.IsDBNull(1) ? now.UtcDateTime : reader.GetFieldValue<DateTime>(1);
            var retryAfter = oldest + window - now.UtcDateTime;
            return new RateLimitDecision(false, key, 0, retryAfter > TimeSpan.Zero ? retryAfter : TimeSpan.Zero);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException && !ct.IsCancellationRequested)
        {
            Failed(now, e);
            return Local(await _local.TryAcquireAsync(key, limit, window, ct));
        }
    }

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
            await using var command = _dataSource.CreateCommand(ReleaseSql);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = permit });
            await command.ExecuteNonQueryAsync(ct);
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
