using System.Net;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Webhooks;

/// <summary>The default egress policy, end to end: HTTPS only, and no internal address at create time or at connect time.</summary>
public abstract class EgressTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteEgress f) : EgressTests(f), IClassFixture<SqliteEgress>;
    public sealed class Postgres(PostgresEgress f) : EgressTests(f), IClassFixture<PostgresEgress>;

    [Theory]
    [InlineData("http://hooks.example.com/", "https")]
    [InlineData("https://127.0.0.1/hook", "loopback")]
    [InlineData("https://2130706433/hook", "loopback")]
    [InlineData("https://0x7f.1/hook", "loopback")]
    [InlineData("https://0177.0.0.1/hook", "loopback")]
    [InlineData("https://localhost/hook", "loopback")]
    [InlineData("https://[::1]/hook", "loopback")]
    [InlineData("https://[::ffff:127.0.0.1]/hook", "IPv4-mapped")]
    [InlineData("https://[::ffff:0:7f00:1]/hook", "IPv4-translated loopback")]
    [InlineData("https://169.254.169.254/latest/meta-data", "link-local")]
    [InlineData("https://10.1.2.3/", "private")]
    [InlineData("https://172.16.0.1/", "private")]
    [InlineData("https://192.168.1.1/", "private")]
    [InlineData("https://100.64.0.1/", "carrier-grade NAT")]
    [InlineData("https://0.0.0.0/", "unspecified")]
    [InlineData("https://224.0.0.1/", "multicast")]
    [InlineData("https://[fd00::1]/", "unique local")]
    [InlineData("https://[fe80::1]/", "link-local")]
    [InlineData("https://127\u30020\u30020\u30021/hook", "loopback")]
    [InlineData("https://127\uFF0E0\uFF0E0\uFF0E1/hook", "loopback")]
    [InlineData("https://127\uFF610\uFF610\uFF611/hook", "loopback")]
    [InlineData("https://169\u3002254\u3002169\u3002254/latest", "link-local")]
    public async Task Forbidden_urls_are_refused_when_saved(string url, string reason)
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var message = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url })).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains(reason, message, StringComparison.Ordinal);
        var hook = await gym.CreateWebhookAsync("https://hooks.example.com/ok");
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { url })).AssertErrorAsync(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Http_urls_saved_while_allowed_are_not_called_once_http_is_off()
    {
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync("https://hooks.example.com/was-http", "member.joined");
        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook.Id).ExecuteUpdateAsync(s => s.SetProperty(x => x.Url, "http://hooks.example.com/was-http")));
        await gym.AddMemberAsync("user_http");
        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.AttemptCount == 1, "refused attempt");
        Assert.Contains("Webhooks:AllowHttp", delivery.LastError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Internal_addresses_are_refused_at_connect_time()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        // URLs that passed validation once and now lead inside (as DNS rebinding would make them). The guard
        // refuses before any TLS handshake, so the plain-HTTP receiver would notice any connection at all.
        string[] urls =
        [
            $"https://127.0.0.1:{receiver.Port}/a",
            $"https://localhost:{receiver.Port}/b",
            $"https://2130706433:{receiver.Port}/c",
            $"https://[::ffff:127.0.0.1]:{receiver.Port}/d",
            $"https://[::1]:{receiver.Port}/e",
            $"https://169.254.169.254:{receiver.Port}/latest/meta-data",
        ];
        var hooks = new List<CreatedHook>();
        foreach (var url in urls)
        {
            var hook = await gym.CreateWebhookAsync("https://hooks.example.com/later-internal", "member.joined");
            await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook.Id).ExecuteUpdateAsync(s => s.SetProperty(x => x.Url, url)));
            hooks.Add(hook);
        }
        await gym.AddMemberAsync("user_ssrf");

        foreach (var hook in hooks)
        {
            var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.AttemptCount == 1, "refused attempt");
            Assert.Equal(DeliveryStatus.Retrying, delivery.Status);
            Assert.StartsWith("Refused to connect", delivery.LastError, StringComparison.Ordinal);
            Assert.Contains("resolves to an address Gymwire may not reach", delivery.LastError, StringComparison.Ordinal);
            Assert.Null(delivery.LastStatusCode);
            // Which address and range only the operator's log says: the webhook's owner or key must not learn where
            // an internal name leads.
            var range = hook == hooks[^1] ? "link-local" : "loopback";
            Assert.DoesNotContain(range, delivery.LastError, StringComparison.Ordinal);
            Assert.Contains(fx.Logs.Lines, l => l.Contains($"Webhook delivery {delivery.Id}", StringComparison.Ordinal)
                && l.Contains("refused by the egress guard", StringComparison.Ordinal) && l.Contains(range, StringComparison.Ordinal));
        }
        var byName = await fx.WaitForDeliveryAsync(hooks[1].Id, d => d.AttemptCount == 1, "refused attempt");
        Assert.DoesNotContain("127.0.0.1", byName.LastError, StringComparison.Ordinal);
        Assert.DoesNotContain("::1", byName.LastError, StringComparison.Ordinal);
        Assert.Empty(receiver.Requests);

        // A test send reports the refusal to the owner at once.
        var sent = await (await gym.Owner().PostAsync($"/api/gym/webhooks/{hooks[1].Id}/test", null)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("undeliverable", sent.GetProperty("status").GetString());
        var error = sent.GetProperty("attempts")[0].GetProperty("error").GetString()!;
        Assert.Contains("Webhooks:AllowedNetworks", error, StringComparison.Ordinal);
        Assert.DoesNotContain("127.0.0.1", error, StringComparison.Ordinal);
        Assert.DoesNotContain("loopback", error, StringComparison.Ordinal);
        Assert.Empty(receiver.Requests);
    }
}
