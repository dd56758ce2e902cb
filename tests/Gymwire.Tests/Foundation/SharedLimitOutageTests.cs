using System.Net;
using Gymwire.Infrastructure;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Foundation;

/// <summary>
/// When the shared rate-limit store fails, a node fails open to its own limiter (the documented limit per node), says
/// so once in its log however many requests it counts meanwhile, and goes back to the shared store once it answers.
/// The failure is made by renaming the store's function in this fixture's own database: the check then errors as it
/// would with the store unreachable, while the rest of the node keeps working.
/// </summary>
public sealed class SharedLimitOutageTests(PostgresGymwire fx) : IClassFixture<PostgresGymwire>
{
    private const string FellBack = "The shared rate-limit store failed";
    private const string Recovered = "The shared rate-limit store answers again";

    private int Count(string text) => fx.Logs.Lines.Count(l => l.Contains(text, StringComparison.Ordinal));

    [Fact]
    public async Task A_failing_shared_store_falls_back_to_the_node_limit_logs_once_and_recovers()
    {
        var store = fx.Services.GetRequiredService<IRateLimitStore>();
        var shared = Assert.IsType<PostgresRateLimitStore>(store);
        var (fellBackBefore, recoveredBefore) = (Count(FellBack), Count(Recovered));
        var gym = await fx.CreateGymAsync();
        var key = (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read" } })).AssertStatusAsync(HttpStatusCode.Created))
            .GetProperty("key").GetString()!;
        using var client = fx.Client(key);
        // 10 counted by the shared store before it fails.
        for (var i = 0; i < 10; i++)
        {
            await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        }
        await fx.WithDbAsync(db => db.Database.ExecuteSqlRawAsync(
            "ALTER FUNCTION gymwire_rate_limit_acquire(text, timestamptz, interval, integer, bigint, integer, timestamptz) RENAME TO gymwire_rate_limit_acquire_broken"));
        try
        {
            // Fail open to this node's own sliding window: 60 admitted (it never saw the first 10), then 429.
            for (var i = 0; i < 60; i++)
            {
                await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
            }
            var limited = await client.GetAsync("/api/zapier/triggers?type=new_member");
            await limited.AssertErrorAsync(HttpStatusCode.TooManyRequests);
            Assert.True(limited.Headers.Contains("Retry-After"));
            Assert.True(shared.FallenBack);

            // Retried after 5 s, and failing again: still one log line for the whole outage.
            fx.Clock.Advance(PostgresRateLimitStore.RetryAfterFailure);
            await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertErrorAsync(HttpStatusCode.TooManyRequests);
            Assert.Equal(fellBackBefore + 1, Count(FellBack));
            Assert.Equal(recoveredBefore, Count(Recovered));
        }
        finally
        {
            await fx.WithDbAsync(db => db.Database.ExecuteSqlRawAsync(
                "ALTER FUNCTION gymwire_rate_limit_acquire_broken(text, timestamptz, interval, integer, bigint, integer, timestamptz) RENAME TO gymwire_rate_limit_acquire"));
        }

        // Back on the shared store at the next retry: it holds the 10 from before the outage, so 50 more are admitted.
        fx.Clock.Advance(PostgresRateLimitStore.RetryAfterFailure);
        var admitted = 0;
        for (var i = 0; i < 60; i++)
        {
            var response = await client.GetAsync("/api/zapier/triggers?type=new_member");
            admitted += response.StatusCode == HttpStatusCode.OK ? 1 : 0;
        }
        Assert.Equal(50, admitted);
        Assert.False(shared.FallenBack);
        Assert.Equal(fellBackBefore + 1, Count(FellBack));
        Assert.Equal(recoveredBefore + 1, Count(Recovered));
    }

    [Fact]
    public async Task Checks_queued_behind_a_call_that_times_out_fall_back_with_it_not_a_timeout_later()
    {
        var gym = await fx.CreateGymAsync();
        var key = (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read" } })).AssertStatusAsync(HttpStatusCode.Created))
            .GetProperty("key").GetString()!;
        using var client = fx.Client(key);
        await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        // The store hangs: every check's call waits for this lock until its command timeout.
        await using var hang = new Npgsql.NpgsqlConnection(fx.ConnectionString);
        await hang.OpenAsync();
        await using (var command = new Npgsql.NpgsqlCommand("BEGIN; LOCK TABLE rate_limit_keys IN ACCESS EXCLUSIVE MODE", hang))
        {
            await command.ExecuteNonQueryAsync();
        }
        try
        {
            var since = System.Diagnostics.Stopwatch.StartNew();
            var first = Timed(client.GetAsync("/api/zapier/triggers?type=new_member"), since);
            await Task.Delay(TimeSpan.FromSeconds(1));
            var queued = Timed(client.GetAsync("/api/zapier/triggers?type=new_member"), since);
            var (firstResponse, firstDone) = await first;
            var (queuedResponse, queuedDone) = await queued;
            await firstResponse.AssertStatusAsync(HttpStatusCode.OK);
            await queuedResponse.AssertStatusAsync(HttpStatusCode.OK);
            Assert.InRange(firstDone, TimeSpan.FromSeconds(PostgresRateLimitStore.CommandTimeoutSeconds - 1), TimeSpan.FromSeconds(PostgresRateLimitStore.CommandTimeoutSeconds + 5));
            // Answered with the first, from the local limiter, not after a second timeout of its own.
            Assert.True(queuedDone - firstDone < TimeSpan.FromSeconds(3), $"the queued check answered {queuedDone - firstDone} after the first");
        }
        finally
        {
            await using var rollback = new Npgsql.NpgsqlCommand("ROLLBACK", hang);
            await rollback.ExecuteNonQueryAsync();
            fx.Clock.Advance(PostgresRateLimitStore.RetryAfterFailure);
        }
        // The store answers again at the next check.
        await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.False(Assert.IsType<PostgresRateLimitStore>(fx.Services.GetRequiredService<IRateLimitStore>()).FallenBack);

        static async Task<(HttpResponseMessage Response, TimeSpan At)> Timed(Task<HttpResponseMessage> request, System.Diagnostics.Stopwatch since)
        {
            var response = await request;
            return (response, since.Elapsed);
        }
    }

    [Fact]
    public async Task RateLimiting_Store_Local_keeps_the_in_process_limiter_on_PostgreSQL()
    {
        var builder = GymwireApp.CreateBuilder([.. fx.Arguments(fx.ConnectionString), "--RateLimiting:Store=local"], b => b.Logging.ClearProviders());
        await using var app = GymwireApp.Build(builder);
        Assert.IsType<InMemoryRateLimitStore>(app.Services.GetRequiredService<IRateLimitStore>());
        await Task.CompletedTask;
    }
}
