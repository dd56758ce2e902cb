using Gymwire.Data;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Bench;

/// <summary>
/// BENCH_PG_STATEMENTS=1 (PostgreSQL): the database's statements during a measured stretch, from pg_stat_statements,
/// heaviest first, with their time per unit of work. Of the database's CPU on this machine, it says which statement
/// to look at first; the bench's own reads (probes of the outbox, counts) are among them.
/// </summary>
public sealed class PgStatements
{
    private readonly IServiceProvider? _services;

    private PgStatements(IServiceProvider? services) => _services = services;

    public static bool Enabled => Environment.GetEnvironmentVariable("BENCH_PG_STATEMENTS") == "1";

    /// <summary>Before the cluster starts: it loads the extension only when started with it.</summary>
    public static void Configure()
    {
        if (Enabled)
        {
            Environment.SetEnvironmentVariable(PostgresCluster.ExtraSettingsVariable,
                "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all");
        }
    }

    /// <summary>Resets the statistics (a no-op unless enabled and on PostgreSQL).</summary>
    public static async Task<PgStatements> StartAsync(IServiceProvider services, string store)
    {
        if (!Enabled || store != "postgres")
        {
            return new PgStatements(null);
        }
        await using (var scope = services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<GymwireDbContext>().Database
                .ExecuteSqlRawAsync("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset();");
        }
        return new PgStatements(services);
    }

    public async Task PrintAsync(string stretch, int units, string unit)
    {
        if (_services is null)
        {
            return;
        }
        await using var scope = _services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var rows = await db.Database.SqlQueryRaw<Statement>("""
            SELECT calls, rows, total_exec_time AS total_ms, total_plan_time AS plan_ms,
                   left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query
            FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY total_exec_time + total_plan_time DESC LIMIT 20
            """).ToListAsync();
        Console.WriteLine($"  pg_stat_statements over {stretch} ({unit}: {units:N0}; µs per {unit}, calls, rows, statement):");
        foreach (var r in rows)
        {
            Console.WriteLine($"    {(r.TotalMs + r.PlanMs) * 1000 / units,8:0.0} µs {r.Calls,8:N0} {r.Rows,8:N0}  {r.Query}");
        }
    }

    private sealed record Statement(long Calls, long Rows, double TotalMs, double PlanMs, string Query);
}
