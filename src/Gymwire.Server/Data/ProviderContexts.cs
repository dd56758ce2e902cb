using Microsoft.EntityFrameworkCore.Design;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace Gymwire.Data;

public enum DatabaseProvider
{
    Sqlite,
    Postgres,
}

/// <summary>SQLite: the embedded default. Carries the migrations in <c>Data/Migrations/Sqlite</c>.</summary>
public sealed class SqliteGymwireDbContext(DbContextOptions<SqliteGymwireDbContext> options) : GymwireDbContext(options)
{
    public override DatabaseProvider Provider => DatabaseProvider.Sqlite;

    protected override void ConfigureConventions(ModelConfigurationBuilder builder)
    {
        base.ConfigureConventions(builder);
        // SQLite stores DateTime as sortable ISO text without a kind; everything Gymwire stores is UTC.
        builder.Properties<DateTime>().HaveConversion<UtcDateTimeConverter>();
        builder.Properties<DateTime?>().HaveConversion<UtcDateTimeConverter>();
    }

    private sealed class UtcDateTimeConverter() : ValueConverter<DateTime, DateTime>(
        v => v.Kind == DateTimeKind.Local ? v.ToUniversalTime() : v,
        v => DateTime.SpecifyKind(v, DateTimeKind.Utc));
}

/// <summary>PostgreSQL: the production store. Carries the migrations in <c>Data/Migrations/Postgres</c>.</summary>
public sealed class PostgresGymwireDbContext(DbContextOptions<PostgresGymwireDbContext> options) : GymwireDbContext(options)
{
    public override DatabaseProvider Provider => DatabaseProvider.Postgres;
}

// Design-time factories for `dotnet ef migrations add` (see scripts/add-migration).
internal sealed class SqliteDesignTimeFactory : IDesignTimeDbContextFactory<SqliteGymwireDbContext>
{
    public SqliteGymwireDbContext CreateDbContext(string[] args)
    {
        var builder = new DbContextOptionsBuilder<SqliteGymwireDbContext>();
        DatabaseSetup.ConfigureSqlite(builder, "Data Source=design-time.db");
        return new SqliteGymwireDbContext(builder.Options);
    }
}

internal sealed class PostgresDesignTimeFactory : IDesignTimeDbContextFactory<PostgresGymwireDbContext>
{
    public PostgresGymwireDbContext CreateDbContext(string[] args)
    {
        var builder = new DbContextOptionsBuilder<PostgresGymwireDbContext>();
        DatabaseSetup.ConfigurePostgres(builder, "Host=localhost;Database=design_time");
        return new PostgresGymwireDbContext(builder.Options);
    }
}
