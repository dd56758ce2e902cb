using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using Gymwire.Data;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Zapier;

public sealed class TriggerCacheOptions
{
    public const string Section = "Zapier";

    /// <summary>Answers kept per node at most (one per gym, trigger type and <c>limit</c>); 0 turns the cache off.</summary>
    [Range(0, 10_000_000, ErrorMessage = "Zapier:TriggerCacheSize must be between 0 and 10000000.")]
    public int TriggerCacheSize { get; set; } = 10_000;
}

/// <summary>
/// Each gym's latest trigger items, so a poll finding nothing new skips the database. An answer is served only while
/// the gym's <see cref="Stamp"/>, read before its query, is unchanged; this node's commits
/// (<see cref="TriggerCacheInterceptor"/>), PostgreSQL NOTIFY from the tables' triggers (<see cref="TriggerCacheListener"/>)
/// and SQLite's <c>PRAGMA data_version</c> move it. Stale items are never served (docs/polling.md).
/// </summary>
public sealed class TriggerCache : IDisposable
{
    /// <summary>What an answer's freshness is judged by: all three must be unchanged.</summary>
    public readonly record struct Stamp(long Epoch, long GymVersion, long DataVersion);

    private readonly record struct Key(Guid GymId, string Type, int Take);

    private sealed record Entry(Stamp Stamp, IReadOnlyList<object> Items);

    private readonly MemoryCache? _cache;
    private readonly ConcurrentDictionary<Guid, long> _gymVersions = new();
    private readonly DatabaseProvider _provider;
    private readonly IServiceScopeFactory _scopes;
    private readonly Lock _sqliteLock = new();
    private SqliteCommand? _dataVersion;
    private bool _inMemory;
    private long _epoch;
    private volatile bool _listening;

    public TriggerCache(IOptions<TriggerCacheOptions> options, IOptions<DatabaseOptions> database, IServiceScopeFactory scopes)
    {
        _provider = database.Value.ProviderKind;
        _scopes = scopes;
        if (options.Value.TriggerCacheSize > 0)
        {
            // Each entry counts 1: the bound is in answers, each at most MaxLimit small items.
            _cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = options.Value.TriggerCacheSize });
        }
    }

    public bool Enabled => _cache is not null;

    /// <summary>The number of answers held (tests check the bound).</summary>
    public int Count => _cache?.Count ?? 0;

    /// <summary>
    /// The gym's stamp now, to read before the query whose answer is stored or compared; null when nothing may be cached
    /// (off, or on PostgreSQL while not listening for other writers).
    /// </summary>
    public Stamp? Current(Guid gymId)
    {
        if (_cache is null || (_provider == DatabaseProvider.Postgres && !_listening))
        {
            return null;
        }
        var epoch = Volatile.Read(ref _epoch);
        var gymVersion = _gymVersions.TryGetValue(gymId, out var v) ? v : 0;
        var dataVersion = _provider == DatabaseProvider.Postgres ? 0 : ReadDataVersion();
        return dataVersion is null ? null : new Stamp(epoch, gymVersion, dataVersion.Value);
    }

    public bool TryGet(Guid gymId, string type, int take, Stamp stamp, out IReadOnlyList<object> items)
    {
        if (_cache?.Get(new Key(gymId, type, take)) is Entry entry && entry.Stamp == stamp)
        {
            items = entry.Items;
            return true;
        }
        items = [];
        return false;
    }

    public void Set(Guid gymId, string type, int take, Stamp stamp, IReadOnlyList<object> items)
    {
        // Idle gyms' answers leave first when the bound is reached (least recently used), or after an hour unused.
        _cache?.Set(new Key(gymId, type, take), new Entry(stamp, items),
            new MemoryCacheEntryOptions { Size = 1, SlidingExpiration = TimeSpan.FromHours(1) });
    }

    /// <summary>A commit changed (or may have changed) the gym's trigger data.</summary>
    public void Invalidate(Guid gymId) => _gymVersions.AddOrUpdate(gymId, 1, (_, v) => v + 1);

    /// <summary>Anything may have changed (the listener missed notifications).</summary>
    public void InvalidateAll() => Interlocked.Increment(ref _epoch);

    internal void SetListening(bool listening)
    {
        _listening = listening;
        InvalidateAll();
    }

    /// <summary>True while the PostgreSQL listener is listening (tests wait for it).</summary>
    public bool Listening => _listening;

    private long? ReadDataVersion()
    {
        lock (_sqliteLock)
        {
            if (_inMemory)
            {
                return null;
            }
            try
            {
                if (_dataVersion is null)
                {
                    string connectionString;
                    using (var scope = _scopes.CreateScope())
                    {
                        connectionString = scope.ServiceProvider.GetRequiredService<GymwireDbContext>().Database.GetConnectionString()!;
                    }
                    var builder = new SqliteConnectionStringBuilder(connectionString) { Pooling = false };
                    if (builder.Mode == SqliteOpenMode.Memory || builder.DataSource is "" or ":memory:")
                    {
                        // An in-memory database cannot be watched from a connection of its own: no caching.
                        _inMemory = true;
                        return null;
                    }
                    var connection = new SqliteConnection(builder.ToString());
                    connection.Open();
                    var command = connection.CreateCommand();
                    command.CommandText = "PRAGMA data_version";
                    _dataVersion = command;
                }
                return (long)_dataVersion.ExecuteScalar()!;
            }
            catch (SqliteException)
            {
                // The file is busy or gone: read the database this time, and open afresh next time.
                DisposeSqlite();
                return null;
            }
        }
    }

    private void DisposeSqlite()
    {
        var connection = _dataVersion?.Connection;
        _dataVersion?.Dispose();
        connection?.Dispose();
        _dataVersion = null;
    }

    public void Dispose()
    {
        lock (_sqliteLock)
        {
            DisposeSqlite();
        }
        _cache?.Dispose();
    }
}
