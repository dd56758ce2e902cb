using System.ComponentModel.DataAnnotations;
using System.Collections.Concurrent;
using System.Text.Json;
using Gymwire.Data;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Zapier;

public sealed class TriggerCacheOptions : IValidatableObject
{
    public const string Section = "Zapier";

    /// <summary>
    /// Bytes of trigger answers kept per node at most, each answer counted as its JSON plus
    /// <see cref="TriggerCache.EntryOverhead"/>; 0 turns the cache off.
    /// </summary>
    [Range(0, 64L * 1024 * 1024 * 1024, ErrorMessage = "Zapier:TriggerCacheBytes must be between 0 and 68719476736.")]
    public long TriggerCacheBytes { get; set; } = 32 * 1024 * 1024;

    /// <summary>The former bound, a count of answers: refused, so that a configuration still setting it is noticed.</summary>
    public int? TriggerCacheSize { get; set; }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (TriggerCacheSize is not null)
        {
            yield return new ValidationResult(
                "Zapier:TriggerCacheSize (a count of answers) is replaced by Zapier:TriggerCacheBytes (bytes; 0 turns the cache off).",
                [nameof(TriggerCacheSize)]);
        }
    }
}

/// <summary>
/// Each gym's latest trigger answers as the JSON sent, so a poll finding nothing new skips the database. An answer is
/// served only while the gym's <see cref="Stamp"/>, read before its query, is unchanged; this node's commits
/// (<see cref="TriggerCacheInvalidation"/>), PostgreSQL NOTIFY from the tables' triggers (<see cref="TriggerCacheChannel"/>)
/// and SQLite's <c>PRAGMA data_version</c> move it. Stale items are never served (docs/polling.md).
/// </summary>
public sealed class TriggerCache : IDisposable
{
    /// <summary>What an answer's freshness is judged by: both must be unchanged.</summary>
    public readonly record struct Stamp(long GymVersion, long DataVersion);

    /// <summary>
    /// What an entry costs besides its JSON, counted against the bound: the array's header, the cache's entry, key and
    /// stamp (TriggerCacheTests prints the heap's growth per entry: about 175 bytes on .NET 10; rounded up).
    /// </summary>
    public const int EntryOverhead = 256;

    private readonly record struct Key(Guid GymId, string Type, int Take);

    private sealed record Entry(Stamp Stamp, TriggerAnswer Answer);

    private readonly MemoryCache? _cache;
    private readonly JsonSerializerOptions _json;
    private readonly ZapierMetrics _metrics;
    private readonly DatabaseProvider _provider;
    private readonly IServiceScopeFactory _scopes;
    private readonly Lock _sqliteLock = new();
    private SqliteCommand? _dataVersion;
    private bool _inMemory;
    private volatile bool _listening;

    // Gym versions. Every invalidation takes the next value of one counter, so a gym's version only grows and never
    // repeats. A gym not in _gymVersions has version _floor: InvalidateAll raises it past every value given, and
    // pruning raises it to the highest version it forgets, so forgetting a gym can never bring back a version that an
    // answer read before its last write was stamped with.
    private readonly ConcurrentDictionary<Guid, long> _gymVersions = new();
    private readonly Lock _versionsLock = new();
    private long _counter;
    private long _floor;

    public TriggerCache(IOptions<TriggerCacheOptions> options, IOptions<DatabaseOptions> database, IServiceScopeFactory scopes,
        IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, ZapierMetrics metrics)
    {
        _provider = database.Value.ProviderKind;
        _scopes = scopes;
        _json = json.Value.SerializerOptions;
        _metrics = metrics;
        if (options.Value.TriggerCacheBytes > 0)
        {
            _cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = options.Value.TriggerCacheBytes, TrackStatistics = true });
        }
    }

    public bool Enabled => _cache is not null;

    /// <summary>The number of answers held.</summary>
    public int Count => _cache?.Count ?? 0;

    /// <summary>The bytes held, as counted against <see cref="TriggerCacheOptions.TriggerCacheBytes"/>.</summary>
    public long Bytes => _cache?.GetCurrentStatistics()?.CurrentEstimatedSize ?? 0;

    /// <summary>Gyms whose version is kept at most; beyond it the least recently written half is forgotten.</summary>
    internal int MaxTrackedGyms { get; init; } = 100_000;

    /// <summary>Gyms whose version is kept now.</summary>
    internal int TrackedGyms => _gymVersions.Count;

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
        var gymVersion = _gymVersions.TryGetValue(gymId, out var v) ? v : Volatile.Read(ref _floor);
        var dataVersion = _provider == DatabaseProvider.Postgres ? 0 : ReadDataVersion();
        return dataVersion is null ? null : new Stamp(gymVersion, dataVersion.Value);
    }

    /// <summary>The answer kept for this poll if it was stored under <paramref name="stamp"/>; counts the lookup.</summary>
    public bool TryGet(Guid gymId, string type, int take, Stamp? stamp, out TriggerAnswer answer)
    {
        answer = null!;
        if (_cache is null)
        {
            return false;
        }
        if (stamp is not { } now)
        {
            _metrics.CacheLookup(type, ZapierMetrics.CacheBypass);
            return false;
        }
        if (_cache.Get(new Key(gymId, type, take)) is not Entry entry)
        {
            _metrics.CacheLookup(type, ZapierMetrics.CacheMiss);
            return false;
        }
        if (entry.Stamp != now)
        {
            _metrics.CacheLookup(type, ZapierMetrics.CacheStale);
            return false;
        }
        _metrics.CacheLookup(type, ZapierMetrics.CacheHit);
        answer = entry.Answer;
        return true;
    }

    /// <summary>The items as the response's JSON, serialized as the API's JSON options serialize any answer.</summary>
    public TriggerAnswer Answer(IReadOnlyList<object> items) => new(JsonSerializer.SerializeToUtf8Bytes(items, _json));

    public void Set(Guid gymId, string type, int take, Stamp stamp, TriggerAnswer answer)
    {
        // The least recently used answers leave first when the bound is reached, and any after an hour unused.
        _cache?.Set(new Key(gymId, type, take), new Entry(stamp, answer),
            new MemoryCacheEntryOptions { Size = answer.Json.Length + EntryOverhead, SlidingExpiration = TimeSpan.FromHours(1) });
    }

    /// <summary>A commit changed (or may have changed) the gym's trigger data.</summary>
    public void Invalidate(Guid gymId)
    {
        lock (_versionsLock)
        {
            _gymVersions[gymId] = ++_counter;
            if (_gymVersions.Count > MaxTrackedGyms)
            {
                Prune();
            }
        }
    }

    /// <summary>Anything may have changed (notifications were missed).</summary>
    public void InvalidateAll()
    {
        lock (_versionsLock)
        {
            // The floor first: a gym read between the two steps then has its old version or the new floor, never the old floor.
            Volatile.Write(ref _floor, ++_counter);
            _gymVersions.Clear();
        }
    }

    // Forgets the least recently written half of the gyms. Their answers stamped before the highest version forgotten
    // are read again once; the more recently written half keep theirs.
    private void Prune()
    {
        var versions = _gymVersions.Values.ToArray();
        Array.Sort(versions);
        var highestForgotten = versions[versions.Length / 2];
        Volatile.Write(ref _floor, Math.Max(_floor, highestForgotten));
        foreach (var (gymId, version) in _gymVersions)
        {
            if (version <= highestForgotten)
            {
                _gymVersions.TryRemove(gymId, out _);
            }
        }
    }

    internal void SetListening(bool listening)
    {
        if (listening)
        {
            InvalidateAll();
            _listening = true;
        }
        else
        {
            _listening = false;
            InvalidateAll();
        }
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

/// <summary>A newest-first trigger answer as the bytes sent, the same whether it was just read or kept.</summary>
public sealed class TriggerAnswer(byte[] json) : IResult, IStatusCodeHttpResult
{
    public byte[] Json => json;

    public int? StatusCode => StatusCodes.Status200OK;

    public Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json; charset=utf-8";
        response.ContentLength = json.Length;
        return response.Body.WriteAsync(json, httpContext.RequestAborted).AsTask();
    }
}
