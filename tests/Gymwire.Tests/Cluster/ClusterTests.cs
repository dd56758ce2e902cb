using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Features.Cluster;
using Gymwire.Tests.Foundation;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Stripe;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Tests.Cluster;

/// <summary>
/// Three nodes on one PostgreSQL behave as one: every documented limit admits its number for the cluster whichever node
/// each request reaches (bursts sent round-robin, concurrently), then 429 with the right Retry-After on every node;
/// a revoked key, a deleted subscription and a changed integration setting take effect on every node; each node's
/// heartbeat lists it.
/// </summary>
public sealed class ClusterTests(ThreeNodes fx) : IClassFixture<ThreeNodes>
{
    private static readonly TimeSpan RevocationReach = TimeSpan.FromSeconds(2);

    private async Task<(string Key, Guid Id)> KeyAsync(TestGym gym)
    {
        var created = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        return (created.GetProperty("key").GetString()!, created.GetProperty("id").GetGuid());
    }

    /// <summary>Sends <paramref name="count"/> requests at once, request i to node i mod 3.</summary>
    private async Task<HttpResponseMessage[]> BurstAsync(string bearer, int count, Func<HttpClient, int, Task<HttpResponseMessage>> send)
    {
        var clients = fx.Nodes.Select(n => n.Client(bearer)).ToArray();
        try
        {
            return await Task.WhenAll(Enumerable.Range(0, count).Select(i => send(clients[i % clients.Length], i)));
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    private static void AssertAdmitted(HttpResponseMessage[] responses, HttpStatusCode success, int expected)
    {
        var statuses = string.Join(", ", responses.GroupBy(r => (int)r.StatusCode).Select(g => $"{g.Key}×{g.Count()}"));
        Assert.True(responses.Count(r => r.StatusCode == success) == expected, $"expected exactly {expected} admitted for the cluster: {statuses}");
        Assert.True(responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests) == responses.Length - expected, $"the rest should be 429: {statuses}");
    }

    /// <summary>One more request on every node: each answers 429 with <paramref name="retryAfter"/> seconds.</summary>
    private async Task AssertLimitedOnEveryNodeAsync(string bearer, Func<HttpClient, Task<HttpResponseMessage>> send, int retryAfter)
    {
        foreach (var node in fx.Nodes)
        {
            using var client = node.Client(bearer);
            var response = await send(client);
            await response.AssertErrorAsync(HttpStatusCode.TooManyRequests);
            Assert.Equal(retryAfter, int.Parse(response.Headers.GetValues("Retry-After").Single(), CultureInfo.InvariantCulture));
        }
    }

    [Fact]
    public async Task Trigger_polls_admit_60_a_minute_per_gym_for_the_cluster_with_a_sliding_window_and_the_right_Retry_After()
    {
        var gym = await fx.CreateGymAsync();
        var (key, _) = await KeyAsync(gym);
        static Task<HttpResponseMessage> Poll(HttpClient c) => c.GetAsync("/api/zapier/triggers?type=new_member");

        AssertAdmitted(await BurstAsync(key, 30, (c, _) => Poll(c)), HttpStatusCode.OK, 30);
        fx.Clock.Advance(TimeSpan.FromSeconds(20));
        AssertAdmitted(await BurstAsync(key, 90, (c, _) => Poll(c)), HttpStatusCode.OK, 30);
        // The oldest of the 60 was admitted 20 s ago: its permit is free in 40 s, whichever node is asked.
        await AssertLimitedOnEveryNodeAsync(key, Poll, 40);

        fx.Clock.Advance(TimeSpan.FromSeconds(40));
        // Only the first 30 have aged out of the window.
        AssertAdmitted(await BurstAsync(key, 60, (c, _) => Poll(c)), HttpStatusCode.OK, 30);
        await AssertLimitedOnEveryNodeAsync(key, Poll, 20);
    }

    [Fact]
    public async Task A_burst_of_one_key_is_checked_over_one_connection_per_node()
    {
        var gym = await fx.CreateGymAsync();
        var (key, _) = await KeyAsync(gym);
        AssertAdmitted(await BurstAsync(key, 90, (c, _) => c.GetAsync("/api/zapier/triggers?type=new_member")), HttpStatusCode.OK, 60);

        // Pooled connections stay open after use, so this counts the most each node opened at once. Checks queued one
        // connection each on the key's row lock before, and a cluster's bursts ran the database out of connections.
        var connections = await fx.WithDbAsync(db => db.Database
            .SqlQuery<long>($"SELECT count(*) AS \"Value\" FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'gymwire rate limits'")
            .SingleAsync());
        Assert.InRange(connections, 1, 2 * fx.Nodes.Count);
    }

    [Fact]
    public async Task A_window_nobody_used_for_its_length_is_deleted_by_the_nodes_sweep()
    {
        var gym = await fx.CreateGymAsync();
        var (key, _) = await KeyAsync(gym);
        AssertAdmitted(await BurstAsync(key, 3, (c, _) => c.GetAsync("/api/zapier/triggers?type=new_member")), HttpStatusCode.OK, 3);
        var window = $"triggers|gym:{gym.GymId}";
        Task<long> RowsAsync() => fx.WithDbAsync(db => db.Database
            .SqlQuery<long>($"SELECT (SELECT count(*) FROM rate_limit_keys WHERE key = {window}) + (SELECT count(*) FROM rate_limit_permits WHERE key = {window}) AS \"Value\"")
            .SingleAsync());
        Assert.Equal(4, await RowsAsync());

        // A minute and a bit later the window is empty; the next heartbeat's sweep (once a minute) deletes its rows.
        fx.Clock.Advance(TimeSpan.FromSeconds(61));
        await Eventually.TrueAsync(async () => await RowsAsync() == 0, what: "the idle window swept");
    }

    [Fact]
    public async Task Actions_admit_30_a_minute_per_gym_for_the_cluster_and_the_limited_ones_write_nothing()
    {
        var gym = await fx.CreateGymAsync();
        var (key, _) = await KeyAsync(gym);
        var responses = await BurstAsync(key, 90, (c, i) => c.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = $"Burst {i}" }));
        AssertAdmitted(responses, HttpStatusCode.Created, 30);
        Assert.Equal(30, await fx.WithDbAsync(db => db.Leads.CountAsync(l => l.GymId == gym.GymId)));
        await AssertLimitedOnEveryNodeAsync(key, c => c.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "over" }), 60);
    }

    [Fact]
    public async Task Mutations_admit_30_a_minute_per_user_for_the_cluster()
    {
        var gym = await fx.CreateGymAsync();
        var responses = await BurstAsync(gym.OwnerToken, 90, (c, i) => c.PostJsonAsync("/api/gym/members", new { name = $"Burst {i}" }));
        AssertAdmitted(responses, HttpStatusCode.Created, 30);
        Assert.Equal(30, await fx.WithDbAsync(db => db.Members.CountAsync(m => m.GymId == gym.GymId)));
        await AssertLimitedOnEveryNodeAsync(gym.OwnerToken, c => c.PostJsonAsync("/api/gym/members", new { name = "over" }), 60);
    }

    [Fact]
    public async Task Destructive_operations_admit_5_an_hour_per_user_for_the_cluster_and_failed_ones_give_their_permit_back()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var ids = new List<Guid>();
        for (var i = 0; i < 15; i++)
        {
            ids.Add((await (await owner.PostJsonAsync("/api/gym/members", new { name = $"M{i}" })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid());
        }
        // A delete that changes nothing (404), on each node, uses none of the hour's five.
        foreach (var node in fx.Nodes)
        {
            using var client = node.Client(gym.OwnerToken);
            await (await client.DeleteAsync($"/api/gym/members/{Guid.NewGuid()}")).AssertErrorAsync(HttpStatusCode.NotFound);
        }
        var responses = await BurstAsync(gym.OwnerToken, ids.Count, (c, i) => c.DeleteAsync($"/api/gym/members/{ids[i]}"));
        AssertAdmitted(responses, HttpStatusCode.OK, 5);
        Assert.Equal(5, await fx.WithDbAsync(db => db.Members.CountAsync(m => m.GymId == gym.GymId && m.LeftAt != null)));
        var left = ids.Where((_, i) => responses[i].StatusCode != HttpStatusCode.OK).ToList();
        await AssertLimitedOnEveryNodeAsync(gym.OwnerToken, c => c.DeleteAsync($"/api/gym/members/{left[0]}"), 3600);

        fx.Clock.Advance(TimeSpan.FromHours(1));
        using var another = fx.Nodes[2].Client(gym.OwnerToken);
        await (await another.DeleteAsync($"/api/gym/members/{left[0]}")).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_key_revoked_on_one_node_is_refused_by_every_node_at_once()
    {
        var gym = await fx.CreateGymAsync();
        var (key, id) = await KeyAsync(gym);
        // Every node has the key cached (valid for ApiKeys:CacheTtl, 30 s) before the revocation.
        foreach (var node in fx.Nodes)
        {
            using var client = node.Client(key);
            await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        }
        using (var owner = fx.Nodes[0].Client(gym.OwnerToken))
        {
            await (await owner.DeleteAsync($"/api/gym/api-keys/{id}")).AssertStatusAsync(HttpStatusCode.OK);
        }
        // Without moving the fake clock: the cache's TTL never expires here; NOTIFY is what evicts. Every node is asked at
        // once, each timed to the answer of its first refusal: asked one after another, the nodes' round trips on a busy
        // machine would add up against the bound. Waited for well past it, so that a late refusal fails on its time.
        var started = DateTime.UtcNow;
        var reaches = await Task.WhenAll(fx.Nodes.Select(async node =>
        {
            using var client = node.Client(key);
            await Eventually.TrueAsync(async () => (await client.GetAsync("/api/zapier/triggers?type=new_member")).StatusCode == HttpStatusCode.Unauthorized,
                what: $"node {node.BaseAddress} refusing the revoked key");
            return (node.BaseAddress, Reach: DateTime.UtcNow - started);
        }));
        foreach (var (node, reach) in reaches)
        {
            Assert.True(reach < RevocationReach, $"node {node} refused the revoked key after {reach.TotalMilliseconds:F0} ms");
        }
    }

    [Fact]
    public async Task A_subscription_deleted_on_one_node_gets_nothing_from_events_written_on_the_others()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var deleted = await gym.CreateWebhookAsync(receiver.Url("/deleted"), "member.created");
        var kept = await gym.CreateWebhookAsync(receiver.Url("/kept"), "member.created");
        using (var owner = fx.Nodes[0].Client(gym.OwnerToken))
        {
            await (await owner.DeleteAsync($"/api/gym/webhooks/{deleted.Id}")).AssertStatusAsync(HttpStatusCode.OK);
        }
        foreach (var node in fx.Nodes.Skip(1))
        {
            using var owner = node.Client(gym.OwnerToken);
            var hook = await (await owner.GetAsync($"/api/gym/webhooks/{deleted.Id}")).AssertStatusAsync(HttpStatusCode.OK);
            Assert.False(hook.GetProperty("is_active").GetBoolean());
            await (await owner.PostJsonAsync("/api/gym/members", new { name = "After the delete" })).AssertStatusAsync(HttpStatusCode.Created);
        }
        await receiver.WaitForAsync("/kept", 2);
        await fx.WaitForDeliveriesAsync(kept.Id, 2, _ => true, "both fan-outs committed");
        Assert.Empty(receiver.At("/deleted"));
        Assert.Empty(await fx.DeliveriesAsync(deleted.Id));
    }

    [Fact]
    public async Task An_owner_session_ended_on_one_node_is_refused_by_every_node_at_once()
    {
        var gym = await fx.CreateGymAsync();
        async Task<string> LoginAsync(Node node)
        {
            using var anonymous = node.Client();
            var login = await (await anonymous.PostAsJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = gym.OwnerPassword }))
                .AssertStatusAsync(HttpStatusCode.OK);
            return login.GetProperty("token").GetString()!;
        }
        async Task AssertEveryNodeAsync(string token, HttpStatusCode expected)
        {
            foreach (var node in fx.Nodes)
            {
                using var client = node.Client(token);
                Assert.Equal(expected, (await client.GetAsync("/api/me")).StatusCode);
            }
        }
        var ended = await LoginAsync(fx.Nodes[1]);
        var kept = await LoginAsync(fx.Nodes[2]);
        await AssertEveryNodeAsync(ended, HttpStatusCode.OK);

        // Sessions are read from the database on every request: no node keeps one after it ends, and the clock stays put.
        using (var client = fx.Nodes[0].Client(ended))
        {
            await (await client.PostAsync("/api/auth/logout", null)).AssertStatusAsync(HttpStatusCode.NoContent);
        }
        await AssertEveryNodeAsync(ended, HttpStatusCode.Unauthorized);
        await AssertEveryNodeAsync(kept, HttpStatusCode.OK);

        using (var client = fx.Nodes[2].Client(kept))
        {
            await (await client.PostAsync("/api/auth/logout-everywhere", null)).AssertStatusAsync(HttpStatusCode.NoContent);
        }
        await AssertEveryNodeAsync(kept, HttpStatusCode.Unauthorized);
        await AssertEveryNodeAsync(gym.OwnerToken, HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task An_idempotency_key_used_on_one_node_replays_and_conflicts_on_every_other()
    {
        var gym = await fx.CreateGymAsync();
        HttpRequestMessage Post(object body)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/api/gym/leads") { Content = JsonContent.Create(body) };
            request.Headers.Add("Idempotency-Key", "cluster-lead");
            return request;
        }
        using var first = fx.Nodes[0].Client(gym.OwnerToken);
        var created = await (await first.SendAsync(Post(new { first_name = "Lee" }))).AssertStatusAsync(HttpStatusCode.Created);
        foreach (var node in fx.Nodes.Skip(1))
        {
            using var client = node.Client(gym.OwnerToken);
            var retry = await client.SendAsync(Post(new { first_name = "Lee" }));
            Assert.Equal(created.GetRawText(), (await retry.AssertStatusAsync(HttpStatusCode.Created)).GetRawText());
            Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());
            await (await client.SendAsync(Post(new { first_name = "Lou" }))).AssertErrorAsync(HttpStatusCode.Conflict);
        }
        Assert.Equal(1, await fx.WithDbAsync(db => db.Leads.CountAsync(l => l.GymId == gym.GymId)));
    }

    [Fact]
    public async Task A_report_schedule_set_and_stopped_on_one_node_reads_the_same_on_every_node_at_once()
    {
        var gym = await fx.CreateGymAsync();
        async Task AssertEveryNodeAsync(bool enabled, string? frequency)
        {
            foreach (var node in fx.Nodes)
            {
                using var client = node.Client(gym.OwnerToken);
                var schedule = await (await client.GetAsync("/api/gym/exports/schedule")).AssertStatusAsync(HttpStatusCode.OK);
                Assert.Equal(enabled, schedule.GetProperty("enabled").GetBoolean());
                Assert.Equal(frequency, schedule.GetProperty("frequency").GetString());
            }
        }
        using (var owner = fx.Nodes[0].Client(gym.OwnerToken))
        {
            await (await owner.PutAsJsonAsync("/api/gym/exports/schedule", new { frequency = "weekly" })).AssertStatusAsync(HttpStatusCode.OK);
        }
        await AssertEveryNodeAsync(true, "weekly");
        using (var owner = fx.Nodes[1].Client(gym.OwnerToken))
        {
            await (await owner.PutAsJsonAsync("/api/gym/exports/schedule", new { frequency = "daily" })).AssertStatusAsync(HttpStatusCode.OK);
        }
        await AssertEveryNodeAsync(true, "daily");
        using (var owner = fx.Nodes[2].Client(gym.OwnerToken))
        {
            await (await owner.DeleteAsync("/api/gym/exports/schedule")).AssertStatusAsync(HttpStatusCode.NoContent);
        }
        await AssertEveryNodeAsync(false, null);
    }

    [Fact]
    public async Task A_Stripe_secret_changed_on_one_node_verifies_on_every_node_at_once()
    {
        var gym = await fx.CreateGymAsync();
        var before = StripeSigner.NewSecret();
        var after = StripeSigner.NewSecret();
        using var owner = fx.Nodes[0].Client(gym.OwnerToken);
        await (await owner.PutAsJsonAsync("/api/gym/integrations/stripe", new { endpoint_secret = before })).AssertStatusAsync(HttpStatusCode.OK);
        var n = 0;
        async Task<HttpResponseMessage> DeliverAsync(Node node, string secret)
        {
            var payload = StripeSigner.Event($"evt_cluster_{++n}", "customer.created", "{\"id\":\"cus_" + n + "\",\"object\":\"customer\"}", fx.Clock.GetUtcNow());
            using var client = node.Client();
            using var content = new StringContent(payload, System.Text.Encoding.UTF8, "application/json");
            content.Headers.Add("Stripe-Signature", StripeSigner.Sign(payload, secret, fx.Clock.GetUtcNow()));
            return await client.PostAsync($"/api/integrations/stripe/webhook/{gym.GymId}", content);
        }
        foreach (var node in fx.Nodes)
        {
            await (await DeliverAsync(node, before)).AssertStatusAsync(HttpStatusCode.OK);
        }
        await (await owner.PutAsJsonAsync("/api/gym/integrations/stripe", new { endpoint_secret = after })).AssertStatusAsync(HttpStatusCode.OK);
        foreach (var node in fx.Nodes)
        {
            await (await DeliverAsync(node, before)).AssertErrorAsync(HttpStatusCode.BadRequest);
            await (await DeliverAsync(node, after)).AssertStatusAsync(HttpStatusCode.OK);
        }
    }

    [Fact]
    public async Task Heartbeats_list_the_three_nodes_live_and_cluster_status_prints_them()
    {
        var options = fx.Services.GetRequiredService<IOptions<ClusterOptions>>().Value;
        var ids = fx.Nodes.Select(n => n.Id).ToHashSet();
        IReadOnlyList<ClusterNodeStatus> status = [];
        await Eventually.TrueAsync(async () =>
        {
            status = await fx.WithDbAsync(db => ClusterHeartbeat.StatusAsync(db, fx.Clock.GetUtcNow().UtcDateTime, options, CancellationToken.None));
            return ids.All(id => status.Any(s => s.Id == id && s.State == "live"));
        }, what: "three live heartbeats");
        Assert.All(status.Where(s => ids.Contains(s.Id)), s => Assert.Equal(["api", "dispatcher", "worker"], s.Roles));

        // Heartbeats keep the nodes live as time passes (the beat runs on the injected clock). A node may be between its
        // beat and its wait on the clock when the clock moves, and then waits a whole interval from the new time, so the
        // clock moves on until every node has beaten at a later time (as in HeartbeatTests).
        var before = fx.Clock.GetUtcNow().UtcDateTime;
        await Eventually.TrueAsync(async () =>
        {
            fx.Clock.Advance(options.HeartbeatInterval);
            status = await fx.WithDbAsync(db => ClusterHeartbeat.StatusAsync(db, fx.Clock.GetUtcNow().UtcDateTime, options, CancellationToken.None));
            return ids.All(id => status.Any(s => s.Id == id && s.LastSeenAt > before && s.State == "live"));
        }, what: "every node beating at a later time");

        var (code, stdout, stderr) = await Cli.RunAsync(fx, "cluster", "status");
        Assert.True(code == 0, stderr);
        var printed = JsonDocument.Parse(stdout).RootElement.GetProperty("nodes").EnumerateArray().Select(e => e.GetProperty("id").GetGuid()).ToList();
        Assert.Superset(ids, printed.ToHashSet());
    }

    [Fact]
    public async Task A_stopped_node_is_listed_as_stopped_a_silent_one_as_dead_and_long_gone_ones_are_forgotten()
    {
        var options = fx.Services.GetRequiredService<IOptions<ClusterOptions>>().Value;
        var fourth = await fx.StartNodeAsync();
        var fourthId = fourth.Services.GetRequiredService<ClusterHeartbeat>().NodeId;
        await Eventually.TrueAsync(() => fx.WithDbAsync(db => db.ClusterNodes.AnyAsync(n => n.Id == fourthId)), what: "the fourth node's heartbeat");
        await fourth.StopAsync();
        await fourth.DisposeAsync();

        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var silent = Guid.NewGuid();
        var ancient = Guid.NewGuid();
        await fx.WithDbAsync(db =>
        {
            db.ClusterNodes.Add(new ClusterNode { Id = silent, Host = "killed", Version = "test", Roles = "api", StartedAt = now.AddMinutes(-5), LastSeenAt = now - options.DeadAfter - TimeSpan.FromSeconds(1) });
            db.ClusterNodes.Add(new ClusterNode { Id = ancient, Host = "gone", Version = "test", Roles = "api", StartedAt = now.AddHours(-3), LastSeenAt = now - options.ForgetAfter - TimeSpan.FromMinutes(1) });
            return db.SaveChangesAsync();
        });
        var status = await fx.WithDbAsync(db => ClusterHeartbeat.StatusAsync(db, now, options, CancellationToken.None));
        Assert.Equal("stopped", status.Single(s => s.Id == fourthId).State);
        Assert.Equal("dead", status.Single(s => s.Id == silent).State);
        Assert.Equal("dead", status.Single(s => s.Id == ancient).State);
        Assert.Equal(3, status.Count(s => s.State == "live"));

        // The live nodes' next sweep deletes what has been gone longer than Cluster:ForgetAfter.
        fx.Clock.Advance(TimeSpan.FromMinutes(1));
        await Eventually.TrueAsync(async () => !await fx.WithDbAsync(db => db.ClusterNodes.AnyAsync(n => n.Id == ancient)), what: "the ancient row forgotten");
        Assert.True(await fx.WithDbAsync(db => db.ClusterNodes.AnyAsync(n => n.Id == silent)));
    }
}
