using System.Collections.Concurrent;
using System.Data.Common;
using System.Diagnostics;
using System.Net;
using Gymwire.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Tests.Zapier;

/// <summary>
/// The database round trips one authenticated <c>create_lead</c> costs on a warm server (key cached, last-used stamp
/// written, the documented rate limit), listed in order, so that adding one fails here. Only the request's own work is
/// counted: the dispatcher's later fan-out runs in the background, outside the request.
/// </summary>
public abstract class ActionRoundTripTests(RoundTripFixture fx)
{
    public sealed class Sqlite(RoundTripSqlite f) : ActionRoundTripTests(f), IClassFixture<RoundTripSqlite>;
    public sealed class Postgres(RoundTripPostgres f) : ActionRoundTripTests(f), IClassFixture<RoundTripPostgres>;

    [Fact]
    public async Task Create_lead_writes_its_lead_and_event_in_the_fewest_round_trips()
    {
        var gym = await fx.CreateGymAsync();
        var key = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "Zapier", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        using var client = fx.Client(key.GetProperty("key").GetString());
        // The first call loads the key into the cache and stamps its last use; the second is the steady state.
        await (await client.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Warm" })).AssertStatusAsync(HttpStatusCode.Created);

        var trips = await fx.RecordAsync(async () =>
            await (await client.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Ana", email = "ana@example.com" })).AssertStatusAsync(HttpStatusCode.Created));

        string[] expected = fx.Store == Store.Postgres
            ?
            [
                // The shared limiter: one call per request for the documented 30 a minute, so the cluster counts exactly.
                "SELECT granted, oldest FROM gymwire_rate_limit_acquire",
                // One batch, which PostgreSQL runs as one implicit transaction, committed with its answer; the outbox row
                // takes the gym's event-order lock in its insert trigger.
                "INSERT INTO leads | INSERT INTO outbox_events",
            ]
            :
            [
                // SQLite runs no batches: one statement each, in one transaction.
                "BEGIN",
                "INSERT INTO \"leads\"",
                "INSERT INTO \"outbox_events\"",
                "COMMIT",
            ];
        Assert.Equal(expected, trips);
        Assert.Equal(2, await fx.WithDbAsync(db => Task.FromResult(db.Leads.Count(l => l.GymId == gym.GymId))));
    }
}

/// <summary>
/// A Gymwire that records the database round trips of the requests made inside <see cref="RecordAsync"/>. SQLite:
/// each statement EF Core runs, and the transaction's BEGIN and COMMIT. PostgreSQL: each command Npgsql sends (an EF
/// Core batch is one; the rate limiter's own connection included), and each COMMIT or ROLLBACK; Npgsql sends BEGIN with
/// the next command, so it is no round trip of its own.
/// </summary>
public abstract class RoundTripFixture(Store store) : GymwireFixture(store), IAsyncLifetime
{
    private static readonly AsyncLocal<ConcurrentQueue<string>?> Request = new();
    private ConcurrentQueue<string>? _recording;
    private ActivityListener? _npgsql;

    protected override void ConfigureServices(IServiceCollection services)
    {
        services.AddSingleton<IInterceptor>(new Recorder(this));
        services.AddSingleton<IStartupFilter>(new Tagging(this));
        if (Store == Store.Postgres)
        {
            _npgsql = new ActivityListener
            {
                ShouldListenTo = source => source.Name == "Npgsql",
                // Only the recorded requests' commands: other tests' (in this process) stay untraced, as they were.
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => Request.Value is null ? ActivitySamplingResult.None : ActivitySamplingResult.AllDataAndRecorded,
                // At its end: Npgsql tags the command's text after starting the activity.
                ActivityStopped = activity =>
                {
                    if (Request.Value is { } trips && QueryText(activity) is { } text)
                    {
                        trips.Enqueue(Summary(text));
                    }
                },
            };
            ActivitySource.AddActivityListener(_npgsql);
        }
    }

    // Re-implemented (GymwireFixture's is not virtual): the listener is process-wide, so it goes with the fixture.
    public new async Task DisposeAsync()
    {
        _npgsql?.Dispose();
        await base.DisposeAsync();
    }

    /// <summary>The round trips of the requests that <paramref name="action"/> makes, in order.</summary>
    public async Task<List<string>> RecordAsync(Func<Task> action)
    {
        _recording = new ConcurrentQueue<string>();
        try
        {
            await action();
            return [.. _recording];
        }
        finally
        {
            _recording = null;
        }
    }

    private static string? QueryText(Activity activity) =>
        (activity.GetTagItem("db.query.text") ?? activity.GetTagItem("db.statement")) as string;

    /// <summary>Each statement's first words up to its table (a batch's joined by " | "), enough to tell them apart.</summary>
    private static string Summary(string sql) => string.Join(" | ", sql
        .Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(statement =>
        {
            var words = statement.Split((char[])[' ', '\n', '\r', '\t', '('], StringSplitOptions.RemoveEmptyEntries);
            return string.Join(' ', words.Take(words.Length > 0 && words[0].Equals("INSERT", StringComparison.OrdinalIgnoreCase) ? 3 : 5));
        }));

    /// <summary>Marks the requests made while recording, so that background work (the dispatcher) is left out.</summary>
    private sealed class Tagging(RoundTripFixture fx) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, nextMiddleware) =>
            {
                Request.Value = fx._recording;
                await nextMiddleware(context);
            });
            next(app);
        };
    }

    private sealed class Recorder(RoundTripFixture fx) : DbCommandInterceptor, IDbTransactionInterceptor
    {
        private void Add(string trip)
        {
            if (Request.Value is { } trips)
            {
                trips.Enqueue(trip);
            }
        }

        // On PostgreSQL Npgsql's own tracing sees every command (EF Core's and the others'); EF Core sees only its own.
        private void Command(DbCommand command)
        {
            if (fx.Store == Store.Sqlite)
            {
                Add(Summary(command.CommandText));
            }
        }

        public override InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result)
        {
            Command(command);
            return result;
        }

        public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        {
            Command(command);
            return ValueTask.FromResult(result);
        }

        public override InterceptionResult<int> NonQueryExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<int> result)
        {
            Command(command);
            return result;
        }

        public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
        {
            Command(command);
            return ValueTask.FromResult(result);
        }

        public override InterceptionResult<object> ScalarExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<object> result)
        {
            Command(command);
            return result;
        }

        public override ValueTask<InterceptionResult<object>> ScalarExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<object> result, CancellationToken cancellationToken = default)
        {
            Command(command);
            return ValueTask.FromResult(result);
        }

        public DbTransaction TransactionStarted(DbConnection connection, TransactionEndEventData eventData, DbTransaction result)
        {
            Begun();
            return result;
        }

        public ValueTask<DbTransaction> TransactionStartedAsync(DbConnection connection, TransactionEndEventData eventData, DbTransaction result, CancellationToken cancellationToken = default)
        {
            Begun();
            return ValueTask.FromResult(result);
        }

        private void Begun()
        {
            if (fx.Store == Store.Sqlite)
            {
                Add("BEGIN");
            }
        }

        public void TransactionCommitted(DbTransaction transaction, TransactionEndEventData eventData) => Add("COMMIT");

        public Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            Add("COMMIT");
            return Task.CompletedTask;
        }

        public void TransactionRolledBack(DbTransaction transaction, TransactionEndEventData eventData) => Add("ROLLBACK");

        public Task TransactionRolledBackAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            Add("ROLLBACK");
            return Task.CompletedTask;
        }
    }
}

public sealed class RoundTripSqlite() : RoundTripFixture(Store.Sqlite);

public sealed class RoundTripPostgres() : RoundTripFixture(Store.Postgres);
