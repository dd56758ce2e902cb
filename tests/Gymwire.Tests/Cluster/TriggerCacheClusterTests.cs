using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gymwire.Features.Members;
using Gymwire.Features.Zapier;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Gymwire.Tests.Zapier;

namespace Gymwire.Tests.Cluster;

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
        await Eventually.TrueAsync(() => Task.FromResult(fx.Nodes.All(n => n.Services.GetRequiredService<TriggerCache>().Listening)),
            what: "every node's trigger cache listening");
        var gym = await fx.CreateGymAsync();
        var key = (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read" } })).AssertStatusAsync(HttpStatusCode.Created))
            .GetProperty("key").GetString();
        var clients = fx.Nodes.Select(n => n.Client(key)).ToArray();
        try
        {
            for (var round = 0; round < 3; round++)
            {
                // Every node has the gym's answer cached.
                foreach (var client in clients)
                {
                    await PollAsync(client);
                    await PollAsync(client);
                }
                var writer = fx.Nodes[round % fx.Nodes.Count];
                var userId = $"user_round{round}";
                var at = fx.Clock.GetUtcNow().UtcDateTime.AddSeconds(round);
                await using (var scope = writer.Services.CreateAsyncScope())
                {
                    var db = scope.ServiceProvider.GetRequiredService<Gymwire.Data.GymwireDbContext>();
                    db.Members.Add(new Member { Id = Guid.CreateVersion7(at), GymId = gym.GymId, UserId = userId, Name = userId, Role = MemberRoles.Member, JoinedAt = at });
                    await db.SaveChangesAsync();
                }
                Assert.Equal(userId, (await PollAsync(clients[round % clients.Length]))[0]);
                var started = DateTime.UtcNow;
                foreach (var client in clients)
                {
                    await Eventually.TrueAsync(async () => (await PollAsync(client)).FirstOrDefault() == userId,
                        TriggerCacheTests.NotifyReach, "the write to reach every node's poll");
                }
                Assert.True(DateTime.UtcNow - started <= TriggerCacheTests.NotifyReach + TimeSpan.FromMilliseconds(200));
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
