using System.ComponentModel.DataAnnotations;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.EntityFrameworkCore.Storage;

namespace Gymwire.Data;

/// <summary>The <c>Database</c> configuration section.</summary>
public sealed class DatabaseOptions
{
    public const string Section = "Database";

    /// <summary><c>sqlite</c> (default) or <c>postgres</c>.</summary>
    [Required]
    [RegularExpression("^(?i:sqlite|postgres)$", ErrorMessage = "Database:Provider must be 'sqlite' or 'postgres'.")]
    public string Provider { get; set; } = "sqlite";

    /// <summary>Apply pending migrations when the server starts.</summary>
    public bool MigrateOnStart { get; set; } = true;

    public DatabaseProvider ProviderKind =>
        string.Equals(Provider, "postgres", StringComparison.OrdinalIgnoreCase) ? DatabaseProvider.Postgres : DatabaseProvider.Sqlite;
}

public static class DatabaseSetup
{
    public const string ConnectionStringName = "Gymwire";
    public const string DefaultSqliteConnectionString = "Data Source=gymwire.db";

    public static IServiceCollection AddGymwireDatabase(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<DatabaseOptions>().BindConfiguration(DatabaseOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        // Validate early as well: the provider choice shapes the service registrations below.
        var options = configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions();
        var results = new List<ValidationResult>();
        if (!Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true))
        {
            throw new OptionsValidationException(DatabaseOptions.Section, typeof(DatabaseOptions), results.Select(r => r.ErrorMessage ?? "invalid"));
        }

        var connectionString = configuration.GetConnectionString(ConnectionStringName);
        services.AddSingleton<SqliteWriteGate>();
        switch (options.ProviderKind)
        {
            case DatabaseProvider.Postgres:
                if (string.IsNullOrWhiteSpace(connectionString))
                {
                    throw new OptionsValidationException("ConnectionStrings:Gymwire", typeof(DatabaseOptions),
                        ["ConnectionStrings:Gymwire is required when Database:Provider is 'postgres'."]);
                }
                services.AddDbContextPool<GymwireDbContext, PostgresGymwireDbContext>(
                    (sp, b) => ConfigurePostgres(b, connectionString, sp));
                break;
            default:
                services.AddSingleton<SqliteWriteGateInterceptor>();
                connectionString = string.IsNullOrWhiteSpace(connectionString) ? DefaultSqliteConnectionString : connectionString;
                ValidateSqlite(connectionString);
                services.AddDbContextPool<GymwireDbContext, SqliteGymwireDbContext>(
                    (sp, b) => ConfigureSqlite(b, connectionString, sp));
                var held = connectionString;
                services.AddHostedService(_ => new SqliteConnectionHold(held));
                break;
        }
        return services;
    }

    /// <summary>
    /// A list in a query (<c>ids.Contains(x.Id)</c>) is bound as one parameter: PostgreSQL <c>= ANY(@ids)</c>, SQLite
    /// <c>IN (SELECT value FROM json_each(@ids))</c>. EF Core 10's default binds one parameter per element, and the
    /// delivery pipeline's lists are long (a claim skips every delivery in flight, up to 256): SQLite then parses and
    /// binds hundreds of named parameters per claim, each bind a linear search of the statement's names, and every
    /// list length is another statement text for PostgreSQL's prepared-statement cache to plan and hold.
    /// </summary>
    private const ParameterTranslationMode CollectionsAsOneParameter = ParameterTranslationMode.Parameter;

    public static void ConfigureSqlite(DbContextOptionsBuilder builder, string connectionString, IServiceProvider? services = null)
    {
        builder.UseSqlite(connectionString, o => o.MigrationsHistoryTable("__ef_migrations_history").UseParameterizedCollectionMode(CollectionsAsOneParameter))
            .UseSnakeCaseNamingConvention()
            .AddInterceptors(SqlitePragmas.Instance)
            // EF Core warns, at every migration that rebuilds a table, that a run killed in it "would need to be
            // reverted manually". Gymwire's runs recover from that themselves (SqliteMigrationLock), and
            // Foundation/SqliteUpgradeTests kills every such migration in its rebuild and checks the next run's schema;
            // logged at every new install, the warning told operators of a manual repair they will never need.
            .ConfigureWarnings(w => w.Ignore(RelationalEventId.NonTransactionalMigrationOperationWarning));
        if (services is not null)
        {
            builder.AddInterceptors(services.GetRequiredService<SqliteWriteGateInterceptor>());
        }
        AddCommon(builder, services);
    }

    public static void ConfigurePostgres(DbContextOptionsBuilder builder, string connectionString, IServiceProvider? services = null)
    {
        builder.UseNpgsql(WithPostgresDefaults(connectionString), o => o.MigrationsHistoryTable("__ef_migrations_history").UseParameterizedCollectionMode(CollectionsAsOneParameter))
            .UseSnakeCaseNamingConvention()
            .AddInterceptors(PostgresOutboxOrder.Instance);
        AddCommon(builder, services);
    }

    /// <summary>
    /// Npgsql settings Gymwire relies on unless the connection string says otherwise. Auto-preparation: the
    /// hot statements (trigger polls, key lookups, action inserts) are few and repeated, and PostgreSQL spent
    /// longer planning the poll than running it; prepared once per connection, they are not planned per request.
    /// </summary>
    internal static string WithPostgresDefaults(string connectionString)
    {
        var given = new DbConnectionStringBuilder { ConnectionString = connectionString };
        var builder = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        if (!given.ContainsKey("Max Auto Prepare") && !given.ContainsKey("MaxAutoPrepare"))
        {
            builder.MaxAutoPrepare = 64;
        }
        return builder.ConnectionString;
    }

    private static void AddCommon(DbContextOptionsBuilder builder, IServiceProvider? services)
    {
        // A failed command is not an error of its own: the code that runs it handles the exception (a unique index
        // deciding a client's race answers 409) or lets it go to whoever logs it (the request pipeline, a background
        // service). At Error, EF Core logged every lost race of a client's duplicates as a server error.
        builder.ConfigureWarnings(w => w.Log((CoreEventId.SaveChangesFailed, LogLevel.Information), (RelationalEventId.CommandError, LogLevel.Information)));
        if (services is not null)
        {
            // What features do after commit (wake-ups, cache invalidation), plus any interceptor a deployment or test registers.
            builder.AddInterceptors(services.GetRequiredService<AfterCommitInterceptor>());
            builder.AddInterceptors(services.GetServices<IInterceptor>());
        }
    }

    private static void ValidateSqlite(string connectionString)
    {
        try
        {
            _ = new SqliteConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException e)
        {
            throw new OptionsValidationException("ConnectionStrings:Gymwire", typeof(DatabaseOptions),
                [$"ConnectionStrings:Gymwire is not a valid SQLite connection string: {e.Message}"]);
        }
    }

    /// <summary>
    /// Applies pending migrations (idempotent; safe on an existing database, and on PostgreSQL safe for several nodes
    /// starting at once).
    /// </summary>
    public static async Task MigrateAsync(IServiceProvider services, CancellationToken cancellationToken = default)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        if (db.Provider == DatabaseProvider.Sqlite)
        {
            var sqliteLogger = services.GetRequiredService<ILoggerFactory>().CreateLogger<SqliteMigrationLock>();
            await db.Database.OpenConnectionAsync(cancellationToken);
            await using var fileLock = await SqliteMigrationLock.AcquireAsync(db, sqliteLogger, cancellationToken);
            RestrictToOwner(((SqliteConnection)db.Database.GetDbConnection()).DataSource);
            // WAL lets readers run beside the writer; it is a property of the file, so set it once here.
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken);
            await db.Database.CloseConnectionAsync();
            await MigrateCoreAsync(db, cancellationToken);
            return;
        }
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger<PostgresMigrationLock>();
        await using var migrationLock = await PostgresMigrationLock.AcquireAsync(db, logger, cancellationToken);
        await MigrateCoreAsync(db, cancellationToken);
    }

    /// <summary>
    /// The database file and its companions are 0600: they hold everything, password hashes and the encrypted key ring
    /// included. SQLite creates a new database with 0644 less the umask; it is still empty when this runs, and the
    /// write-ahead log, its index and journals, created later, take the database file's mode (SQLite sets it on them
    /// whatever the umask). Files of an older installation are tightened the same way at its next start.
    /// </summary>
    private static void RestrictToOwner(string databaseFile)
    {
        if (string.IsNullOrEmpty(databaseFile))
        {
            return;
        }
        foreach (var suffix in (string[])["", "-wal", "-shm", "-journal", SqliteMigrationLock.Suffix])
        {
            Infrastructure.OwnerOnlyFile.Restrict(databaseFile + suffix);
        }
    }

    /// <summary>
    /// The SQLite database's file as SQLite resolved it (see <see cref="SqliteMigrationLock"/>), beside which the key
    /// file and the set-up token go; null for an in-memory or temporary database.
    /// </summary>
    public static async Task<string?> SqliteFileAsync(GymwireDbContext db, CancellationToken cancellationToken = default)
    {
        await db.Database.OpenConnectionAsync(cancellationToken);
        try
        {
            var file = ((SqliteConnection)db.Database.GetDbConnection()).DataSource;
            return string.IsNullOrEmpty(file) ? null : file;
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }
    }

    /// <summary>This version's migrations that the database lacks, oldest first.</summary>
    public static async Task<IReadOnlyList<string>> PendingMigrationsAsync(IServiceProvider services, CancellationToken cancellationToken = default)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        // A database that does not exist yet lacks them all; asking it would create an empty SQLite file, or fail on PostgreSQL.
        if (!await db.GetService<IRelationalDatabaseCreator>().ExistsAsync(cancellationToken))
        {
            return [.. db.Database.GetMigrations()];
        }
        return [.. await db.Database.GetPendingMigrationsAsync(cancellationToken)];
    }

    private static async Task MigrateCoreAsync(GymwireDbContext db, CancellationToken cancellationToken)
    {
        // On a new PostgreSQL database EF Core reads the history table before it creates it, and the failed read is
        // logged at Error level (npgsql/efcore.pg#3407): an operator's first start looked like a failed install.
        // Creating the table first, with EF's own statement, leaves nothing to fail.
        await db.GetService<IHistoryRepository>().CreateIfNotExistsAsync(cancellationToken);
        await RenameMigrationsAsync(db, cancellationToken);
        try
        {
            await db.Database.MigrateAsync(cancellationToken);
        }
        catch (DbException e)
        {
            // Each migration runs in a transaction of its own: the run stopped at the first one still pending, in it or
            // while starting it (a lock it waited for, say).
            var failed = (await db.Database.GetPendingMigrationsAsync(cancellationToken)).FirstOrDefault();
            if (failed is null)
            {
                throw;
            }
            throw new DatabaseMigrationException(
                $"migrating stopped at {failed}, and the database keeps every migration before it: {e.Message}", e);
        }
    }

    /// <summary>
    /// Migrations whose id changed after a build of main had applied them (a migration made again under a new timestamp,
    /// its Up unchanged). EF Core knows a migration only by its id, so a database that recorded the old one would run it
    /// again and fail; the history is corrected first.
    /// </summary>
    private static readonly (string Old, string New)[] RenamedMigrations =
    [
        ("20261204084757_GymTimeZoneAndReportRecipients", "20261204085250_GymTimeZoneAndReportRecipients"),
        ("20261204084841_GymTimeZoneAndReportRecipients", "20261204085344_GymTimeZoneAndReportRecipients"),
    ];

    private static async Task RenameMigrationsAsync(GymwireDbContext db, CancellationToken cancellationToken)
    {
        foreach (var (old, renamed) in RenamedMigrations)
        {
            // Where both are recorded (the new id inserted by hand), the old one just goes.
            await db.Database.ExecuteSqlAsync(
                $"DELETE FROM __ef_migrations_history WHERE migration_id = {old} AND EXISTS (SELECT 1 FROM __ef_migrations_history WHERE migration_id = {renamed})",
                cancellationToken);
            await db.Database.ExecuteSqlAsync(
                $"UPDATE __ef_migrations_history SET migration_id = {renamed} WHERE migration_id = {old}", cancellationToken);
        }
    }
}

/// <summary>Per-connection SQLite settings: enforce foreign keys, wait for the writer instead of failing, fsync at WAL checkpoints.</summary>
internal sealed class SqlitePragmas : DbConnectionInterceptor
{
    public static readonly SqlitePragmas Instance = new();

    public override void ConnectionOpened(DbConnection connection, ConnectionEndEventData eventData) => Apply(connection);

    public override Task ConnectionOpenedAsync(DbConnection connection, ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Apply(connection);
        return Task.CompletedTask;
    }

    // The settings belong to the native connection, which the pool keeps open across EF's open/close
    // of each query: set them once per native connection, not once per query.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<object, object> Applied = [];

    private static void Apply(DbConnection connection)
    {
        if (connection is SqliteConnection { Handle: { } handle })
        {
            if (Applied.TryGetValue(handle, out _))
            {
                return;
            }
            Applied.AddOrUpdate(handle, Applied);
        }
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;";
        command.ExecuteNonQuery();
    }
}

/// <summary>A migration failed; the message names it.</summary>
public sealed class DatabaseMigrationException(string message, Exception inner) : Exception(message, inner);
