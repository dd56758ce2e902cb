using System.Data.Common;
using Gymwire.Data;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Gymwire.Tests.Foundation;

/// <summary>
/// A SQLite upgrade killed part way completes at the next start (<see cref="SqliteMigrationLock"/>). A crash is
/// simulated by failing one statement of the run: its transaction is lost, as in a kill -9, and what earlier
/// transactions committed stays. EF Core rebuilds a SQLite table in three transactions (create and fill the copy; drop
/// and rename; indexes), and a start used to find the database stuck after the first two. PostgreSQL runs each
/// migration in one transaction, and its lock is a session's (<see cref="MigrationLockTests"/>).
/// </summary>
public sealed class SqliteUpgradeTests(SqliteGymwire fx) : IClassFixture<SqliteGymwire>
{
    public static TheoryData<string> CrashPoints => new()
    {
        // The first transaction: the index dropped and the copy made are rolled back.
        "CREATE TABLE \"ef_temp_webhook_deliveries\"",
        // The second: the first committed, so the index is gone and the filled copy exists beside the intact table.
        "DROP TABLE \"webhook_deliveries\"",
        // The third: the table is rebuilt, without its indexes, and the migration is not recorded.
        "CREATE INDEX \"ix_webhook_deliveries_due\"",
    };

    [Theory]
    [MemberData(nameof(CrashPoints))]
    public async Task An_upgrade_killed_in_a_table_rebuild_completes_at_the_next_start_keeping_every_row(string crashAt)
    {
        var crash = new CrashOnStatement(prefix: crashAt);
        await using var app = Build(await fx.CreateScratchDatabaseAsync(), crash);
        var now = new DateTime(2026, 4, 16, 12, 0, 0, DateTimeKind.Utc);
        var delivery = await SeedBeforeDeliveryIndexTrimAsync(app, now);

        crash.Armed = true;
        await Assert.ThrowsAsync<SimulatedCrash>(() => DatabaseSetup.MigrateAsync(app.Services));
        Assert.False(crash.Armed);

        await DatabaseSetup.MigrateAsync(app.Services);
        await using var scope = app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        Assert.Empty(await db.Database.GetPendingMigrationsAsync());
        Assert.Empty(await NamesAsync(db, "table", "ef\\_temp\\_%"));
        Assert.Equal(0, await db.Database.SqlQuery<int>($"SELECT count(*) AS \"Value\" FROM pragma_table_info('webhook_deliveries') WHERE name = 'claim_token'").SingleAsync());
        Assert.Equal(
            ["ix_webhook_deliveries_due", "ix_webhook_deliveries_gym_id_event_id_subscription_id", "ix_webhook_deliveries_subscription_id_gym_id_created_at"],
            await NamesAsync(db, "index", "ix\\_webhook\\_deliveries\\_%"));
        var stored = await db.WebhookDeliveries.AsNoTracking().SingleAsync();
        Assert.Equal((delivery.Id, delivery.Payload, delivery.Status, delivery.NextAttemptAt), (stored.Id, stored.Payload, stored.Status, stored.NextAttemptAt));
        // The due index works: the worker's query finds the delivery.
        Assert.Equal(1, await db.WebhookDeliveries.CountAsync(d => d.Status == DeliveryStatus.Pending && d.NextAttemptAt <= now));
    }

    /// <summary>Every SQLite migration that rebuilds a table (it turns foreign keys off), with the two points its rebuild can be killed at.</summary>
    public static TheoryData<string, string> Rebuilds()
    {
        var options = new DbContextOptionsBuilder<SqliteGymwireDbContext>();
        DatabaseSetup.ConfigureSqlite(options, "Data Source=:memory:");
        using var db = new SqliteGymwireDbContext(options.Options);
        var migrator = db.GetService<IMigrator>();
        var ids = db.Database.GetMigrations().ToList();
        var data = new TheoryData<string, string>();
        for (var i = 1; i < ids.Count; i++)
        {
            if (migrator.GenerateScript(ids[i - 1], ids[i]).Contains(CrashOnStatement.ForeignKeysOff, StringComparison.Ordinal))
            {
                data.Add(ids[i], CrashOnStatement.ForeignKeysOff);
                data.Add(ids[i], CrashOnStatement.ForeignKeysOn);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Rebuilds))]
    public async Task Every_table_rebuilding_migration_killed_in_its_rebuild_leaves_the_schema_a_clean_upgrade_makes(string migration, string after)
    {
        var crash = new CrashOnStatement(after: after);
        await using var app = Build(await fx.CreateScratchDatabaseAsync(), crash);
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            var ids = db.Database.GetMigrations().ToList();
            await db.GetService<IMigrator>().MigrateAsync(ids[ids.IndexOf(migration) - 1]);
        }

        // The migration is the first one pending, so the crash is in its rebuild.
        crash.Armed = true;
        await Assert.ThrowsAsync<SimulatedCrash>(() => DatabaseSetup.MigrateAsync(app.Services));
        await DatabaseSetup.MigrateAsync(app.Services);

        await using var clean = Build(await fx.CreateScratchDatabaseAsync());
        await DatabaseSetup.MigrateAsync(clean.Services);
        Assert.Equal(await SchemaAsync(clean), await SchemaAsync(app));
    }

    private static async Task<List<string>> SchemaAsync(WebApplication app)
    {
        await using var scope = app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        return await db.Database.SqlQuery<string>($"SELECT type || ' ' || name || ': ' || coalesce(sql, '') AS \"Value\" FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name").ToListAsync();
    }

    [Fact]
    public async Task A_migration_lock_left_by_a_killed_run_does_not_stop_the_next_start()
    {
        await using var app = Build(await fx.CreateScratchDatabaseAsync());
        await DatabaseSetup.MigrateAsync(app.Services);
        await using (var scope = app.Services.CreateAsyncScope())
        {
            // What EF Core's lock leaves when its process dies mid-run; before, every later start waited on it forever.
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            await db.Database.ExecuteSqlRawAsync($"INSERT INTO \"{SqliteMigrationLock.EfLockTable}\" (\"Id\", \"Timestamp\") VALUES (1, '2026-04-16 12:00:00')");
        }

        await DatabaseSetup.MigrateAsync(app.Services).WaitAsync(TimeSpan.FromSeconds(60));

        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            Assert.Equal(0, await db.Database.SqlQuery<int>($"SELECT count(*) AS \"Value\" FROM \"__EFMigrationsLock\"").SingleAsync());
        }
    }

    [Fact]
    public async Task A_run_waits_while_another_process_holds_the_lock_file_and_then_migrates()
    {
        var connectionString = await fx.CreateScratchDatabaseAsync();
        await using var app = Build(connectionString);
        var lockFile = Path.GetFullPath(new SqliteConnectionStringBuilder(connectionString).DataSource) + SqliteMigrationLock.Suffix;
        Task run;
        // flock is per open file: this handle conflicts with the run's own as another process's would.
        await using (new FileStream(lockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            run = DatabaseSetup.MigrateAsync(app.Services);
            await Task.Delay(TimeSpan.FromSeconds(1));
            Assert.False(run.IsCompleted);
            await using var look = new SqliteConnection(connectionString);
            await look.OpenAsync();
            await using var tables = look.CreateCommand();
            tables.CommandText = "SELECT count(*) FROM sqlite_master";
            Assert.Equal(0L, await tables.ExecuteScalarAsync()); // nothing migrated while waiting
            SqliteConnection.ClearPool(look);
        }
        await run.WaitAsync(TimeSpan.FromSeconds(60));
        await using var scope = app.Services.CreateAsyncScope();
        Assert.Empty(await scope.ServiceProvider.GetRequiredService<GymwireDbContext>().Database.GetPendingMigrationsAsync());
    }

    private WebApplication Build(string connectionString, IInterceptor? interceptor = null)
    {
        var builder = GymwireApp.CreateBuilder(fx.Arguments(connectionString), b =>
        {
            b.Logging.ClearProviders();
            if (interceptor is not null)
            {
                b.Services.AddSingleton(interceptor);
            }
        });
        return GymwireApp.Build(builder);
    }

    /// <summary>The schema of the release before DeliveryIndexTrim, holding one due delivery.</summary>
    private static async Task<WebhookDelivery> SeedBeforeDeliveryIndexTrimAsync(WebApplication app, DateTime now)
    {
        await using var scope = app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        await db.Database.OpenConnectionAsync();
        await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;");
        await db.Database.CloseConnectionAsync();
        await db.GetService<IMigrator>().MigrateAsync("DeliveryBodyPerEvent");
        var (gymId, subscriptionId) = (Guid.NewGuid(), Guid.NewGuid());
        var delivery = new WebhookDelivery
        {
            Id = Guid.CreateVersion7(now), GymId = gymId, SubscriptionId = subscriptionId, Event = "lead.created",
            Payload = """{"event":"lead.created"}""", Status = DeliveryStatus.Pending, CreatedAt = now, NextAttemptAt = now,
        };
        // In SQL: today's model has columns (gyms.time_zone, api_key_id) that this old schema does not. SQLite keeps ids as upper-case text.
        await db.Database.ExecuteSqlRawAsync("INSERT INTO gyms (id, name, created_at) VALUES ({0}, 'Old', {1})", gymId.ToString().ToUpperInvariant(), now);
        await db.Database.ExecuteSqlRawAsync(
            "INSERT INTO webhook_subscriptions (id, gym_id, url, events, is_active, created_at, updated_at, secret_protected) VALUES ({0}, {1}, 'https://hooks.example.com/old', '', 1, {2}, {2}, 'x')",
            subscriptionId.ToString().ToUpperInvariant(), gymId.ToString().ToUpperInvariant(), now);
        await db.Database.ExecuteSqlAsync($"""
            INSERT INTO webhook_deliveries (id, gym_id, subscription_id, event, payload, is_test, status, attempt_count, created_at, next_attempt_at)
            VALUES ({delivery.Id.ToString().ToUpperInvariant()}, {gymId.ToString().ToUpperInvariant()}, {subscriptionId.ToString().ToUpperInvariant()},
                    {delivery.Event}, {delivery.Payload}, {false}, {delivery.Status}, {0}, {now}, {now})
            """);
        return delivery;
    }

    private static Task<List<string>> NamesAsync(GymwireDbContext db, string type, string like) =>
        db.Database.SqlQuery<string>($"SELECT name AS \"Value\" FROM sqlite_master WHERE type = {type} AND name LIKE {like} ESCAPE '\\' ORDER BY name").ToListAsync();

    private sealed class SimulatedCrash() : Exception("simulated crash");

    /// <summary>
    /// While armed, fails the first statement that starts with <paramref name="prefix"/>, or the first after the
    /// statement <paramref name="after"/>, and disarms.
    /// </summary>
    private sealed class CrashOnStatement(string? prefix = null, string? after = null) : DbCommandInterceptor
    {
        public const string ForeignKeysOff = "PRAGMA foreign_keys = 0;";
        public const string ForeignKeysOn = "PRAGMA foreign_keys = 1;";

        public volatile bool Armed;
        private bool _seen;

        public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
        {
            var text = command.CommandText.Trim();
            if (Armed && (prefix is not null ? text.StartsWith(prefix, StringComparison.Ordinal) : _seen))
            {
                Armed = false;
                throw new SimulatedCrash();
            }
            _seen |= Armed && text == after;
            return ValueTask.FromResult(result);
        }
    }
}
