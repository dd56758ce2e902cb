using Gymwire.Features.Cluster;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Reliability;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Tests.Cluster;

/// <summary>
/// The queue's side of a dead node's claims, on both stores (the fixture's worker is off, so only the test claims): a
/// claim records its node and its due time before the claim; giving a claim back or releasing a dead node's claims
/// clears the node and makes each due at that time again; releasing is conditional, so several nodes doing it at once
/// release each claim once; at start, SQLite gives back every claim a previous process left, PostgreSQL none.
/// </summary>
public abstract class ClaimOwnerTests(GymwireFixture fx)
{
    public sealed class Sqlite(PassiveSqlite f) : ClaimOwnerTests(f), IClassFixture<PassiveSqlite>;
    public sealed class Postgres(PassivePostgres f) : ClaimOwnerTests(f), IClassFixture<PassivePostgres>;

    private const int Count = 40;

    [Fact]
    public async Task Claims_record_their_node_and_due_time_and_a_dead_nodes_claims_are_released_once_to_that_due_time()
    {
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync("https://hooks.example.com/claims", "lead.created");
        var queue = fx.Queue();
        var self = fx.Services.GetRequiredService<ThisNode>().Id;
        var lease = fx.Services.GetRequiredService<IOptions<WebhookOptions>>().Value.EffectiveClaimLease;
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        // Due 1 … 40 s ago, oldest first.
        var due = Enumerable.Range(0, Count).Select(i => now.AddSeconds(i - Count)).ToList();
        var ids = await fx.WithDbAsync(async db =>
        {
            var rows = due.Select(at => new WebhookDelivery
            {
                Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = hook.Id, Event = "lead.created", Payload = "{}",
                Status = DeliveryStatus.Pending, CreatedAt = at, NextAttemptAt = at,
            }).ToList();
            db.WebhookDeliveries.AddRange(rows);
            await db.SaveChangesAsync();
            return rows.Select(r => r.Id).ToList();
        });
        Task<List<WebhookDelivery>> RowsAsync() => fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => ids.Contains(d.Id)).OrderBy(d => d.CreatedAt).ToListAsync());
        void AssertReleased(WebhookDelivery row, DateTime dueAt)
        {
            Assert.Null(row.ClaimedBy);
            Assert.Null(row.LockedUntil);
            Assert.Equal(dueAt, row.NextAttemptAt);
        }

        var claimed = await queue.ClaimAsync(Count, [], [], CancellationToken.None);
        Assert.Equal(ids, claimed.Select(c => c.Id));
        var rows = await RowsAsync();
        Assert.All(rows, r =>
        {
            Assert.Equal(self, r.ClaimedBy);
            Assert.Equal(now + lease, r.LockedUntil);
            Assert.Equal(now + lease, r.NextAttemptAt);
        });
        Assert.Equal(due, rows.Select(r => r.DueBeforeClaim!.Value));

        // Given back without an attempt (over an endpoint's cap, shutdown): the node is cleared too.
        await queue.ReleaseAsync([claimed[0]], CancellationToken.None);
        AssertReleased((await RowsAsync())[0], due[0]);

        // The rest as if claimed by a node that then died. A node holding nothing releases nothing; four live nodes
        // releasing the dead one's claims at once release each exactly once, back to its due time before the claim.
        var dead = Guid.NewGuid();
        var theirs = ids.Skip(1).ToList();
        await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => theirs.Contains(d.Id)).ExecuteUpdateAsync(s => s.SetProperty(d => d.ClaimedBy, dead)));
        Assert.Equal(0, await queue.ReleaseClaimsOfAsync(Guid.NewGuid(), CancellationToken.None));
        var released = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => queue.ReleaseClaimsOfAsync(dead, CancellationToken.None))));
        Assert.Equal(Count - 1, released.Sum());
        Assert.Equal(0, await queue.ReleaseClaimsOfAsync(dead, CancellationToken.None));
        rows = await RowsAsync();
        for (var i = 0; i < Count; i++)
        {
            AssertReleased(rows[i], due[i]);
        }

        // At start: on SQLite (one node) every claim still held is a previous process's; on PostgreSQL others' may be live.
        Assert.Equal(Count, (await queue.ClaimAsync(Count, [], [], CancellationToken.None)).Count);
        Assert.Equal(fx.Store == Store.Sqlite ? Count : 0, await queue.ReleaseLeftoverClaimsAsync(CancellationToken.None));
        rows = await RowsAsync();
        if (fx.Store == Store.Sqlite)
        {
            for (var i = 0; i < Count; i++)
            {
                AssertReleased(rows[i], due[i]);
            }
        }
        else
        {
            Assert.All(rows, r => Assert.Equal(self, r.ClaimedBy));
        }
    }
}
