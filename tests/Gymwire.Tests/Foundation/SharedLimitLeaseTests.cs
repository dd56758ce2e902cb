using Gymwire.Infrastructure;
using Microsoft.Extensions.Configuration;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gymwire.Tests.Foundation;

/// <summary>
/// A limit of <see cref="PostgresRateLimitStore.LeaseFrom"/> or more is leased: each node takes several permits per call.
/// Three stores on one database stand for three nodes. The cluster still never admits more than the limit, a node's
/// unused rest of a lease goes back when it takes the next one, and a refused request gets the time until the oldest
/// lease is free.
/// </summary>
public sealed class SharedLimitLeaseTests(PostgresGymwire fx) : IClassFixture<PostgresGymwire>
{
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    private PostgresRateLimitStore NewNode() =>
        new(fx.Services.GetRequiredService<IConfiguration>(), fx.Clock, NullLogger<PostgresRateLimitStore>.Instance);

    private Task<(int Permits, int Rows)> CountsAsync(string key) => fx.WithDbAsync(async db =>
    {
        var permits = await db.Database.SqlQuery<int>($"SELECT coalesce((SELECT permits FROM rate_limit_keys WHERE key = {key}), 0) AS \"Value\"").SingleAsync();
        var rows = await db.Database.SqlQuery<int>($"SELECT count(*)::int AS \"Value\" FROM rate_limit_permits WHERE key = {key}").SingleAsync();
        return (permits, rows);
    });

    [Fact]
    public async Task Three_nodes_leasing_a_large_limit_never_admit_more_than_it_and_take_fewer_rows_than_requests()
    {
        const int limit = 4000;
        var key = $"lease-test|{Guid.NewGuid()}";
        var nodes = new[] { NewNode(), NewNode(), NewNode() };
        try
        {
            var admitted = 0;
            var refused = new List<RateLimitDecision>();
            // 8 concurrent callers per node, 4,300 checks in all.
            await Task.WhenAll(nodes.SelectMany(node => Enumerable.Range(0, 8).Select(async _ =>
            {
                for (var i = 0; i < 180; i++)
                {
                    var decision = await node.TryAcquireAsync(key, limit, Window, CancellationToken.None);
                    if (decision.Admitted)
                    {
                        Interlocked.Increment(ref admitted);
                    }
                    else
                    {
                        lock (refused)
                        {
                            refused.Add(decision);
                        }
                    }
                }
            })));

            // Never more than the limit; fewer only by the nodes' unused rests (a lease here is at most limit / 1000).
            Assert.InRange(admitted, limit - nodes.Length * (limit / 1000), limit);
            Assert.Equal(3 * 8 * 180 - admitted, refused.Count);
            // A lease is stamped at the end of its time (1 s): the oldest is free a window after that.
            Assert.All(refused, r => Assert.InRange(r.RetryAfter, Window, Window + PostgresRateLimitStore.LeaseTime));
            var (permits, rows) = await CountsAsync(key);
            Assert.Equal(limit, permits);
            Assert.True(rows <= admitted / 2, $"{rows} rows for {admitted} admitted: leases should take several permits per row");
        }
        finally
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_leases_unused_rest_is_given_back_with_the_next_lease_and_a_released_permit_frees_one()
    {
        const int limit = 100_000;
        var key = $"lease-test|{Guid.NewGuid()}";
        await using var node = NewNode();

        // The first lease is one permit, used at once, so the next takes two: one admitted, one left.
        Assert.True((await node.TryAcquireAsync(key, limit, Window, CancellationToken.None)).Admitted);
        Assert.True((await node.TryAcquireAsync(key, limit, Window, CancellationToken.None)).Admitted);
        Assert.Equal(3, (await CountsAsync(key)).Permits);

        // Past the lease's time its rest goes back before the next (smaller) lease is taken.
        fx.Clock.Advance(PostgresRateLimitStore.LeaseTime + TimeSpan.FromMilliseconds(1));
        var third = await node.TryAcquireAsync(key, limit, Window, CancellationToken.None);
        Assert.True(third.Admitted);
        Assert.Equal(3, (await CountsAsync(key)).Permits);

        // A request that changed nothing gives its permit back.
        await node.ReleaseAsync(key, third.Permit, CancellationToken.None);
        Assert.Equal(2, (await CountsAsync(key)).Permits);
    }

    [Fact]
    public async Task A_documented_limit_is_not_leased_each_request_is_one_permit()
    {
        var key = $"lease-test|{Guid.NewGuid()}";
        await using var node = NewNode();
        for (var i = 0; i < 5; i++)
        {
            Assert.True((await node.TryAcquireAsync(key, 60, Window, CancellationToken.None)).Admitted);
        }
        Assert.Equal((5, 5), await CountsAsync(key));
    }
}
