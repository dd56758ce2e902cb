using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gymwire.Features.Members;
using Gymwire.Features.Zapier;
using Gymwire.Tests.Cluster;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;

namespace Gymwire.Tests.Zapier;

/// <summary>
/// A write committed through one node reaches the trigger cache of every other node within the documented bound
/// (docs/polling.md), by the NOTIFY the writing transaction sends; the writing node's own next poll has it at once.
/// </summary>
public sealed class TriggerCacheClusterTests(ThreeNodes fx) : IClassFixture<ThreeNodes>
{
    private static async Task<List<string>> PollAsync(HttpClient client)
    {
        var response = await client.GetAsync("/api/zapier/triggers?type=new_member");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return [.. (await response.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray().Select(m => m.GetProperty("user_id").GetString()!)];
    }

    [Fact]
    public async Task A_write_through_one_node_is_in_every_nodes_poll_within_the_bound()
    {
        var caches = fx.Nodes.Select(n => n.Services.GetRequiredService<TriggerCache>()).ToArray();
        await Eventually.TrueAsync(() => Task.FromResult(caches.All(c => c.Listening)), what: "every node's trigger cache listening");
        var gym = await fx.CreateGymAsync();
        var key = (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read" } })).AssertStatusAsync(HttpStatusCode.Created))
            .GetProperty("key").GetString();
        var clients = fx.Nodes.Select(n => n.Client(key)).ToArray();
        try
        {
            // Seven polls a round, 21 in all: within the gym's 60 a minute, which the frozen fake clock never renews.
            for (var round = 0; round < 3; round++)
            {
                // Every node has the gym's answer cached, and no earlier write's notification (the gym's creation, the
                // last round's write reaching its own writer) is still on its way to move a stamp.
                await TriggerCacheTests.HandledEarlierNotificationsAsync(fx.Services, caches);
                for (var i = 0; i < clients.Length; i++)
                {
                    await PollAsync(clients[i]);
                    Assert.True(caches[i].TryGet(gym.GymId, "new_member", ZapierTriggers.Limit, caches[i].Current(gym.GymId), out _),
                        $"node {i} has the gym's answer cached");
                }
                var before = caches.Select(c => c.Current(gym.GymId)).ToArray();
                var writer = round % fx.Nodes.Count;
                var userId = $"user_round{round}";
                var at = fx.Clock.GetUtcNow().UtcDateTime.AddSeconds(round);
                await using (var scope = fx.Nodes[writer].Services.CreateAsyncScope())
                {
                    var db = scope.ServiceProvider.GetRequiredService<Gymwire.Data.GymwireDbContext>();
                    db.Members.Add(new Member { Id = Guid.CreateVersion7(at), GymId = gym.GymId, UserId = userId, Name = userId, Role = MemberRoles.Member, JoinedAt = at });
                    await db.SaveChangesAsync();
                }
                var committed = DateTime.UtcNow;
                Assert.Equal(userId, (await PollAsync(clients[writer]))[0]);
                // The other nodes: the reach is measured on each cache's stamp for the gym, which only this write's
                // notification can move now, all nodes at once; HTTP polls one node after another on a busy machine
                // would add their round trips to it. A poll of each node then shows the write.
                var reaches = await Task.WhenAll(Enumerable.Range(0, caches.Length).Where(i => i != writer).Select(async i => (Node: i,
                    Reach: await TriggerCacheTests.ReachAsync(committed, () => caches[i].Current(gym.GymId) != before[i], $"the write to reach node {i}'s cache"))));
                foreach (var (node, reach) in reaches)
                {
                    Assert.True(reach <= TriggerCacheTests.NotifyReach + TriggerCacheTests.ObservationSlack,
                        $"the write reached node {node}'s cache after {reach.TotalMilliseconds:F0} ms");
                }
                foreach (var client in clients)
                {
                    Assert.Equal(userId, (await PollAsync(client))[0]);
                }
            }
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }
}
