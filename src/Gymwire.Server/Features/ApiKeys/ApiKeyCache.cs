using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using System.Runtime.InteropServices;

namespace Gymwire.Features.ApiKeys;

/// <summary>The <c>ApiKeys</c> configuration section.</summary>
public sealed class ApiKeyOptions
{
    public const string Section = "ApiKeys";

    /// <summary>
    /// How long a validated key is trusted without asking the database again. Revocation evicts at once on
    /// the revoking node (and, on PostgreSQL, on every node); this bounds everything else. Zero disables the cache.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00", ErrorMessage = "ApiKeys:CacheTtl must be between 00:00:00 (off) and 01:00:00.")]
    public TimeSpan CacheTtl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How often a node checks the database for revocations it was not told of (another process on SQLite, such as
    /// the command line while <c>serve</c> runs, or a revocation sent while a node's PostgreSQL listener was down).
    /// When the revoked keys change, the cache is cleared. This bounds such revocations instead of <see cref="CacheTtl"/>.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.1", "00:10:00", ErrorMessage = "ApiKeys:RevocationPollInterval must be between 00:00:00.1 and 00:10:00.")]
    public TimeSpan RevocationPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>At most this many keys are cached per node.</summary>
    [Range(1, 10_000_000, ErrorMessage = "ApiKeys:CacheSize must be between 1 and 10000000.")]
    public int CacheSize { get; set; } = 10_000;
}

/// <summary>What authentication needs of a key row: everything except the hash it is found by.</summary>
public sealed record CachedApiKey(Guid Id, Guid GymId, string Name, string Scopes, DateTime? ExpiresAt, DateTime? RevokedAt);

/// <summary>
/// Validated API keys by SHA-256, so that a poll does not query the key. Only keys that exist are cached
/// (a made-up key always reaches the database, and so a key created after a miss works at once), the
/// plain key is never held, and the size is bounded. Revocation and expiry stay exact: revocation evicts
/// (see <see cref="Evict"/>), expiry is checked on every request against the cached <c>expires_at</c>.
/// </summary>
public sealed class ApiKeyCache(IOptions<ApiKeyOptions> options, TimeProvider clock)
{
    private readonly ConcurrentDictionary<HashKey, Entry> _entries = new();
    private readonly TimeSpan _ttl = options.Value.CacheTtl;
    private readonly int _capacity = options.Value.CacheSize;
    private long _generation;

    public bool Enabled => _ttl > TimeSpan.Zero;

    public int Count => _entries.Count;

    /// <summary>
    /// Changes on every eviction. A caller reads it before loading a key from the database and passes it to
    /// <see cref="Add"/>, so a load that raced with a revocation cannot put the pre-revocation row back.
    /// </summary>
    public long Generation => Interlocked.Read(ref _generation);

    public bool TryGet(ReadOnlySpan<byte> hash, out CachedApiKey key)
    {
        if (Enabled && _entries.TryGetValue(HashKey.From(hash), out var entry))
        {
            if (clock.GetUtcNow() - entry.LoadedAt < _ttl)
            {
                key = entry.Key;
                return true;
            }
            _entries.TryRemove(new KeyValuePair<HashKey, Entry>(HashKey.From(hash), entry));
        }
        key = null!;
        return false;
    }

    public void Add(ReadOnlySpan<byte> hash, CachedApiKey key, long generation)
    {
        if (!Enabled || Generation != generation)
        {
            return;
        }
        var id = HashKey.From(hash);
        if (!_entries.ContainsKey(id) && _entries.Count >= _capacity)
        {
            MakeRoom();
        }
        var entry = new Entry(key, clock.GetUtcNow());
        _entries[id] = entry;
        if (Generation != generation)
        {
            // An eviction ran between the check above and the write: it may have missed this entry.
            _entries.TryRemove(new KeyValuePair<HashKey, Entry>(id, entry));
        }
    }

    /// <summary>Forgets a key (it was revoked here or on another node).</summary>
    public void Evict(Guid keyId)
    {
        Interlocked.Increment(ref _generation);
        foreach (var (hash, entry) in _entries)
        {
            if (entry.Key.Id == keyId)
            {
                _entries.TryRemove(new KeyValuePair<HashKey, Entry>(hash, entry));
            }
        }
    }

    /// <summary>Forgets every key (e.g. revocations may have been missed while notifications were down).</summary>
    public void Clear()
    {
        Interlocked.Increment(ref _generation);
        _entries.Clear();
    }

    private void MakeRoom()
    {
        var now = clock.GetUtcNow();
        foreach (var (hash, entry) in _entries)
        {
            if (now - entry.LoadedAt >= _ttl)
            {
                _entries.TryRemove(new KeyValuePair<HashKey, Entry>(hash, entry));
            }
        }
        // Still full of live keys: drop about a tenth (in no particular order) rather than stop caching.
        var excess = _entries.Count - _capacity + Math.Max(1, _capacity / 10);
        foreach (var hash in _entries.Keys)
        {
            if (excess-- <= 0)
            {
                break;
            }
            _entries.TryRemove(hash, out _);
        }
    }

    private sealed record Entry(CachedApiKey Key, DateTimeOffset LoadedAt);

    /// <summary>The 32 bytes of a SHA-256, as a value that hashes and compares without allocating.</summary>
    private readonly record struct HashKey(UInt128 High, UInt128 Low)
    {
        public static HashKey From(ReadOnlySpan<byte> sha256) =>
            new(MemoryMarshal.Read<UInt128>(sha256), MemoryMarshal.Read<UInt128>(sha256[16..]));
    }
}
