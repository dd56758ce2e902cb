using System.Diagnostics;
using Npgsql;

namespace Gymwire.Tests.Infrastructure;

/// <summary>
/// A throwaway PostgreSQL cluster for the whole test run: initdb into a temporary directory, pg_ctl
/// start on a free loopback port, one fresh database per fixture, stopped and deleted at process exit (and, should a
/// run die before that, at the next run's start).
/// Uses the system's PostgreSQL binaries (scripts/test installs them when missing).
/// </summary>
public sealed class PostgresCluster
{
    private static readonly Lazy<Task<PostgresCluster>> Shared = new(StartAsync);
    private readonly string _directory;
    private readonly string _binDirectory;
    private readonly bool _asPostgresUser;

    private PostgresCluster(string directory, string binDirectory, int port, bool asPostgresUser)
    {
        _directory = directory;
        _binDirectory = binDirectory;
        Port = port;
        _asPostgresUser = asPostgresUser;
    }

    public int Port { get; }

    /// <summary>The PostgreSQL binaries' folder (pg_dump and pg_restore for the backup tests).</summary>
    public string BinDirectory => _binDirectory;

    public static Task<PostgresCluster> InstanceAsync() => Shared.Value;

    public string ConnectionString(string database) =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Database={database};Include Error Detail=true;Maximum Pool Size=50";

    /// <summary>Creates an empty database and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = "gw_" + Guid.NewGuid().ToString("N")[..16];
        await using var connection = new NpgsqlConnection(ConnectionString("postgres"));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
        await command.ExecuteNonQueryAsync();
        return ConnectionString(name);
    }

    /// <summary>Drops a database made by <see cref="CreateDatabaseAsync"/>, ending the connections still open to it.</summary>
    public async Task DropDatabaseAsync(string connectionString)
    {
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database!;
        NpgsqlConnection.ClearPool(new NpgsqlConnection(connectionString));
        await using var connection = new NpgsqlConnection(ConnectionString("postgres"));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<PostgresCluster> StartAsync()
    {
        var bin = FindBinDirectory() ?? throw new InvalidOperationException(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found. Run scripts/test, which installs them, or install the 'postgresql' package.");
        var asPostgres = Environment.UserName == "root";
        await SweepAsync(bin, asPostgres);
        var directory = Path.Combine(Path.GetTempPath(), DirectoryPrefix + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        await File.WriteAllTextAsync(Path.Combine(directory, OwnerFile), Owner(Process.GetCurrentProcess()));
        if (asPostgres)
        {
            await RunAsync("chown", $"postgres:postgres {directory}", asUser: false);
        }
        var data = Path.Combine(directory, "data");
        await PgAsync(bin, asPostgres, "initdb", $"-D {data} -U postgres -A trust -E UTF8 --locale=C --no-sync");
        var log = Path.Combine(directory, "server.log");
        // The port is probed free but bound only when the server starts: should something take it meanwhile, the server
        // fails to start saying so in its log, and it starts again on another port.
        for (var attempt = 1; ; attempt++)
        {
            var port = TestPorts.Free();
            var settings = $"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off " +
                           "-c full_page_writes=off -c max_connections=500 -c shared_buffers=128MB " +
                           // For profiling (the bench's BENCH_PG_STATEMENTS loads pg_stat_statements this way).
                           Environment.GetEnvironmentVariable(ExtraSettingsVariable);
            try
            {
                await PgAsync(bin, asPostgres, "pg_ctl", $"-D {data} -l {log} -w -t 60 -o \"{settings}\" start");
            }
            catch (InvalidOperationException) when (attempt < 3 && TestPorts.AddressInUse(File.ReadAllText(log)))
            {
                File.Delete(log);
                continue;
            }
            var cluster = new PostgresCluster(directory, bin, port, asPostgres);
            AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.Stop(data);
            return cluster;
        }
    }

    private void Stop(string data)
    {
        try
        {
            NpgsqlConnection.ClearAllPools();
            PgAsync("pg_ctl", $"-D {data} -m immediate -w stop").GetAwaiter().GetResult();
        }
        catch (InvalidOperationException)
        {
            // Best effort at exit; the directory is removed below either way.
        }
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private const string DirectoryPrefix = "gymwire-pg-";

    /// <summary>Extra server settings (<c>-c name=value ...</c>) for the cluster, read when it starts.</summary>
    public const string ExtraSettingsVariable = "GYMWIRE_PG_SETTINGS";
    private const string OwnerFile = "owner";

    internal static string Owner(Process process) => $"{process.Id} {process.StartTime.ToUniversalTime().Ticks}";

    /// <summary>
    /// Stops and deletes the clusters of earlier runs whose process is gone. A test host that is killed (or ends
    /// without running its exit handlers) leaves its server running and its data directory behind, and repeated runs
    /// on one machine filled its temporary directory with them. A directory with no owner file that is not a minute
    /// old may be one another run is creating right now, so it is left alone.
    /// </summary>
    private static async Task SweepAsync(string bin, bool asPostgres)
    {
        foreach (var directory in Directory.GetDirectories(Path.GetTempPath(), DirectoryPrefix + "*"))
        {
            var owner = Path.Combine(directory, OwnerFile);
            if (File.Exists(owner) ? IsAlive(File.ReadAllText(owner)) : Directory.GetLastWriteTimeUtc(directory) > DateTime.UtcNow.AddMinutes(-1))
            {
                continue;
            }
            var data = Path.Combine(directory, "data");
            if (File.Exists(Path.Combine(data, "postmaster.pid")))
            {
                try
                {
                    await PgAsync(bin, asPostgres, "pg_ctl", $"-D {data} -m immediate -w stop");
                }
                catch (InvalidOperationException)
                {
                    // Not running (a stale pid file): deleting the directory is all that is left.
                }
            }
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Another user's, or in use: not ours to remove.
            }
        }
    }

    /// <summary>
    /// Whether the process that wrote an owner file still runs: the same pid, started at the same time. The start time
    /// is compared within a second, not exactly: on Linux .NET derives it from the boot time, which each process computes
    /// as now minus uptime, so two processes read the same process's start time some microseconds apart. An exact
    /// comparison called every other live run dead, and a test run started beside another (scripts/soak during
    /// development) stopped that run's PostgreSQL server mid-test.
    /// </summary>
    internal static bool IsAlive(string owner)
    {
        var parts = owner.Split(' ');
        if (parts.Length != 2 || !int.TryParse(parts[0], out var pid) || !long.TryParse(parts[1], out var startTicks))
        {
            return false;
        }
        try
        {
            using var process = Process.GetProcessById(pid);
            return Math.Abs(process.StartTime.ToUniversalTime().Ticks - startTicks) < TimeSpan.TicksPerSecond;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    private Task PgAsync(string tool, string arguments) => PgAsync(_binDirectory, _asPostgresUser, tool, arguments);

    private static Task PgAsync(string bin, bool asPostgresUser, string tool, string arguments) =>
        asPostgresUser
            ? RunAsync("runuser", $"-u postgres -- {Path.Combine(bin, tool)} {arguments}", asUser: true)
            : RunAsync(Path.Combine(bin, tool), arguments, asUser: false);

    private static async Task RunAsync(string file, string arguments, bool asUser)
    {
        _ = asUser;
        var start = new ProcessStartInfo(file, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {arguments} failed ({process.ExitCode}): {await stdout} {await stderr}");
        }
    }

    private static string? FindBinDirectory()
    {
        var fromEnv = Environment.GetEnvironmentVariable("GYMWIRE_PG_BIN");
        if (fromEnv is not null && File.Exists(Path.Combine(fromEnv, "initdb")))
        {
            return fromEnv;
        }
        if (Directory.Exists("/usr/lib/postgresql"))
        {
            var newest = Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => Path.Combine(d, "bin"))
                .Where(d => File.Exists(Path.Combine(d, "initdb")) && File.Exists(Path.Combine(d, "pg_ctl")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), out var v) ? v : 0)
                .FirstOrDefault();
            if (newest is not null)
            {
                return newest;
            }
        }
        var path = Environment.GetEnvironmentVariable("PATH")?.Split(':') ?? [];
        return path.FirstOrDefault(p => File.Exists(Path.Combine(p, "initdb")) && File.Exists(Path.Combine(p, "pg_ctl")));
    }
}
