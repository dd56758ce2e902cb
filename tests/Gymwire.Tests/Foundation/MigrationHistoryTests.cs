using Gymwire.Data;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Gymwire.Tests.Foundation;

/// <summary>What an upgrade does with the migrations a database has recorded: renamed ones, and one that fails.</summary>
public abstract class MigrationHistoryTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : MigrationHistoryTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : MigrationHistoryTests(f), IClassFixture<PostgresGymwire>;

    private const string TimeZones = "GymTimeZoneAndReportRecipients";

    [Fact]
    public async Task A_database_that_recorded_a_migration_under_its_earlier_id_upgrades()
    {
        // main at 8f12bb4 (2026-12-04) shipped this migration under an id that the next commit changed.
        var earlierId = fx.Store == Store.Sqlite ? "20261204084757_" + TimeZones : "20261204084841_" + TimeZones;
        var database = await fx.CreateScratchDatabaseAsync();
        await using var app = await MigratedUpToAsync(database, TimeZones);
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            var currentId = db.Database.GetMigrations().Single(m => m.EndsWith("_" + TimeZones, StringComparison.Ordinal));
            await db.Database.ExecuteSqlAsync($"UPDATE __ef_migrations_history SET migration_id = {earlierId} WHERE migration_id = {currentId}");
        }

        await DatabaseSetup.MigrateAsync(app.Services);
        await AssertAllAppliedAsync(app);

        // An operator who worked round the failure by recording the new id by hand has both: the old one goes.
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            await db.Database.ExecuteSqlAsync($"INSERT INTO __ef_migrations_history (migration_id, product_version) VALUES ({earlierId}, '10.0.0')");
        }
        await DatabaseSetup.MigrateAsync(app.Services);
        await AssertAllAppliedAsync(app);
    }

    private static async Task AssertAllAppliedAsync(WebApplication app)
    {

        await using var scope = app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        Assert.Empty(await db.Database.GetPendingMigrationsAsync());
        Assert.Equal(db.Database.GetMigrations(), await db.Database.GetAppliedMigrationsAsync());
    }

    [Fact]
    public async Task A_failing_migration_is_one_error_line_naming_it_and_the_migrations_before_it_stay()
    {
        var database = await fx.CreateScratchDatabaseAsync();
        string failing;
        await using (var app = await MigratedUpToAsync(database, "DeliveryClaimedBy"))
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            failing = (await db.Database.GetPendingMigrationsAsync()).First();
            Assert.EndsWith("_" + TimeZones, failing, StringComparison.Ordinal);
            // A column the next migration adds, already there: the migration fails as one against a damaged schema would.
            await db.Database.ExecuteSqlRawAsync("ALTER TABLE gyms ADD COLUMN time_zone TEXT");
        }

        var environment = new Dictionary<string, string> { ["ConnectionStrings__Gymwire"] = database };
        if (fx.Store == Store.Postgres)
        {
            environment["DataProtection__Key"] = TestKeys.For(database);
        }
        var (code, stdout, stderr) = await Cli.RunAsync(fx, environment, "migrate");

        Assert.Equal(2, code);
        Assert.Equal("", stdout.Trim());
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.StartsWith($"error: migrating stopped at {failing}, and the database keeps every migration before it: ", line, StringComparison.Ordinal);
        Assert.Contains("time_zone", line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);

        await using var after = await MigratedUpToAsync(database, null);
        await using var check = after.Services.CreateAsyncScope();
        var applied = await check.ServiceProvider.GetRequiredService<GymwireDbContext>().Database.GetAppliedMigrationsAsync();
        Assert.EndsWith("_DeliveryClaimedBy", applied.Last(), StringComparison.Ordinal);
    }

    /// <summary>A server on <paramref name="database"/>, migrated up to <paramref name="lastMigration"/> (null: not at all).</summary>
    private async Task<WebApplication> MigratedUpToAsync(string database, string? lastMigration)
    {
        var app = GymwireApp.Build(GymwireApp.CreateBuilder(fx.Arguments(database), b => b.Logging.ClearProviders()));
        if (lastMigration is not null)
        {
            await using var scope = app.Services.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<GymwireDbContext>().GetService<IMigrator>().MigrateAsync(lastMigration);
        }
        return app;
    }
}
