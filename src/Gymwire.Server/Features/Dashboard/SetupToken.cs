using System.Buffers.Text;
using System.Net;
using System.Security.Cryptography;

namespace Gymwire.Features.Dashboard;

/// <summary>The <c>Setup</c> configuration section: where the first-run set-up token is written.</summary>
public sealed class SetupOptions
{
    public const string Section = "Setup";

    /// <summary>
    /// The token file's path. Default: <see cref="SetupToken.FileName"/> in the SQLite database file's directory, or (on
    /// PostgreSQL, or an in-memory SQLite database) in the current directory.
    /// </summary>
    public string? TokenFile { get; set; }
}

/// <summary>
/// The one-time set-up token. Until the first gym exists, the set-up page (<see cref="SetupModel"/>) creates it for
/// anyone only from loopback; from anywhere else it asks for this token, which the server writes, owner-only, to a file
/// that only someone with access to the server's files can read. The file's contents are the token: a node that finds
/// the file (another node sharing the directory, a restart) uses it as it is. The file goes once a gym exists. The token
/// is never logged; the file's path is, once.
/// </summary>
public sealed partial class SetupToken(IOptions<SetupOptions> options, ILogger<SetupToken> logger)
{
    public const string FileName = "gymwire.setup-token";

    private string? _path;
    private int _logged;

    /// <summary>
    /// Whether the request comes from this machine itself: its address (after the configured forwarded-headers handling:
    /// an X-Forwarded-For counts only from a trusted proxy) is loopback, and it carries no header in which a proxy names a
    /// client. A reverse proxy on the same host connects from loopback too; what it forwards needs the token.
    /// </summary>
    public static bool IsLocal(HttpContext http)
    {
        var remote = http.Connection.RemoteIpAddress;
        if (remote is null)
        {
            return false;
        }
        if (remote.IsIPv4MappedToIPv6)
        {
            remote = remote.MapToIPv4();
        }
        var headers = http.Request.Headers;
        return IPAddress.IsLoopback(remote)
               && !headers.ContainsKey("X-Forwarded-For") && !headers.ContainsKey("Forwarded")
               && !headers.ContainsKey("X-Real-IP") && !headers.ContainsKey("X-Original-For");
    }

    /// <summary>The token file's full path (see <see cref="SetupOptions.TokenFile"/>).</summary>
    public async Task<string> PathAsync(GymwireDbContext db, CancellationToken ct)
    {
        if (_path is { } known)
        {
            return known;
        }
        string path;
        if (!string.IsNullOrWhiteSpace(options.Value.TokenFile))
        {
            path = Path.GetFullPath(options.Value.TokenFile);
        }
        else if (db.Provider == DatabaseProvider.Sqlite && await DatabaseSetup.SqliteFileAsync(db, ct) is { } databaseFile)
        {
            path = Path.Combine(Path.GetDirectoryName(databaseFile) ?? ".", FileName);
        }
        else
        {
            path = Path.GetFullPath(FileName);
        }
        return _path = path;
    }

    /// <summary>Creates the token file unless it exists. Returns its path, or null when it could not be written (logged).</summary>
    public async Task<string?> EnsureAsync(GymwireDbContext db, CancellationToken ct)
    {
        var path = await PathAsync(db, ct);
        try
        {
            if (!File.Exists(path))
            {
                // Losing a race with another node on the same directory leaves its token, which serves as well.
                OwnerOnlyFile.TryCreate(path, NewToken() + "\n");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogNotWritten(logger, path, e.Message);
            return null;
        }
        if (Interlocked.Exchange(ref _logged, 1) == 0)
        {
            LogWritten(logger, path);
        }
        return path;
    }

    /// <summary>Whether <paramref name="given"/> is the token in the file, compared in constant time; false without a file.</summary>
    public async Task<bool> MatchesAsync(GymwireDbContext db, string? given, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(given))
        {
            return false;
        }
        string expected;
        try
        {
            expected = (await File.ReadAllTextAsync(await PathAsync(db, ct), ct)).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
        // Hashed first, so the comparison takes the same time whatever the lengths.
        return expected.Length > 0 && CryptographicOperations.FixedTimeEquals(
            SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(expected)), SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(given.Trim())));
    }

    /// <summary>Deletes the token file, if there is one: a gym exists, so set-up is over.</summary>
    public async Task DeleteAsync(GymwireDbContext db, CancellationToken ct)
    {
        var path = await PathAsync(db, ct);
        try
        {
            if (File.Exists(path))
            {
                File.Delete(path);
                LogDeleted(logger, path);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogNotDeleted(logger, path, e.Message);
        }
    }

    /// <summary>256 random bits, base64url (43 characters, no padding).</summary>
    private static string NewToken() => Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    /// <summary>The SQLite database's file as SQLite resolved it; null for an in-memory or temporary database.</summary>
    [LoggerMessage(EventId = 7011, Level = LogLevel.Warning,
        Message = "No gym exists yet. Set-up (/setup) works from this machine as it is; from elsewhere it asks for the one-time set-up token in {Path}")]
    private static partial void LogWritten(ILogger logger, string path);

    [LoggerMessage(EventId = 7012, Level = LogLevel.Warning,
        Message = "The set-up token file {Path} could not be written ({Reason}): set-up (/setup) works only from this machine")]
    private static partial void LogNotWritten(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 7013, Level = LogLevel.Information, Message = "A gym exists: deleted the set-up token file {Path}")]
    private static partial void LogDeleted(ILogger logger, string path);

    [LoggerMessage(EventId = 7014, Level = LogLevel.Warning, Message = "A gym exists, but the set-up token file {Path} could not be deleted ({Reason})")]
    private static partial void LogNotDeleted(ILogger logger, string path, string reason);
}

/// <summary>At start: with no gym, writes the set-up token file (and logs where); with one, deletes a file left over.</summary>
internal sealed partial class SetupTokenAtStart(IServiceScopeFactory scopes, SetupToken token, ILogger<SetupTokenAtStart> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            if (await db.Gyms.AnyAsync(cancellationToken))
            {
                await token.DeleteAsync(db, cancellationToken);
            }
            else
            {
                await token.EnsureAsync(db, cancellationToken);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The set-up page tries again when it is opened.
            LogFailed(logger, e);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 7015, Level = LogLevel.Warning, Message = "Could not check for a first gym at start; the set-up page will")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
