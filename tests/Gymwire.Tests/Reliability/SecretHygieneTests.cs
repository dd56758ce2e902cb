using System.Net;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Reliability;

/// <summary>
/// R7: API keys, session tokens, passwords and webhook secrets (old and rotated) appear in no log line, no error message, no
/// database column in plain text, and no response after the one that created them. Logging runs at Trace for
/// every category here, EF Core's SQL and parameter logging included, so nothing is hidden by log levels.
/// </summary>
public abstract class SecretHygieneTests(GymwireFixture fx)
{
    public sealed class Sqlite(VerboseSqlite f) : SecretHygieneTests(f), IClassFixture<VerboseSqlite>;
    public sealed class Postgres(VerbosePostgres f) : SecretHygieneTests(f), IClassFixture<VerbosePostgres>;

    [Fact]
    public async Task Every_answer_that_carries_a_secret_is_not_to_be_stored()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var answers = new Dictionary<string, HttpResponseMessage>
        {
            ["login"] = await fx.Client().PostJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = gym.OwnerPassword }),
            ["api key"] = await owner.PostJsonAsync("/api/gym/api-keys", new { name = "no-store", scopes = new[] { "read" } }),
            ["webhook"] = await owner.PostJsonAsync("/api/gym/webhooks", new { url = "https://receiver.example.com/no-store" }),
        };
        var webhookId = (await answers["webhook"].AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetString();
        answers["rotated secret"] = await owner.PostAsync($"/api/gym/webhooks/{webhookId}/rotate-secret", null);
        Assert.All(answers, a =>
        {
            Assert.True(a.Value.IsSuccessStatusCode, a.Key);
            Assert.True(a.Value.Headers.CacheControl?.NoStore == true, $"{a.Key}: Cache-Control '{a.Value.Headers.CacheControl}'");
        });
    }

    [Fact]
    public async Task Secrets_are_shown_once_and_found_nowhere_else()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var created = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "hygiene", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        var key = created.GetProperty("key").GetString()!;
        var secrets = new List<string> { key, key[11..], gym.OwnerToken, gym.OwnerToken[4..], gym.OwnerPassword };
        var webhook = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url = "https://receiver.example.com/hook" })).AssertStatusAsync(HttpStatusCode.Created);
        var webhookId = webhook.GetProperty("id").GetString();
        var secret = webhook.GetProperty("secret").GetString()!;
        var rotated = (await (await owner.PostAsync($"/api/gym/webhooks/{webhookId}/rotate-secret", null)).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("secret").GetString()!;
        secrets.AddRange([secret, secret["whsec_".Length..], rotated, rotated["whsec_".Length..]]);
        await owner.PostJsonAsync($"/api/gym/webhooks/{webhookId}/test", new { @event = "lead.created" });

        // Use everything, succeed and fail, so that every code path that could log does.
        using var client = fx.Client(key);
        await client.GetAsync("/api/zapier/triggers?type=new_member");
        await client.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Secret" });
        await fx.Client(key[..^1] + (key[^1] == 'a' ? 'b' : 'a')).GetAsync("/api/gym/members");
        await fx.Client().PostJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = gym.OwnerPassword + "x" });
        await fx.Client().PostJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = gym.OwnerPassword });
        await owner.DeleteAsync($"/api/gym/api-keys/{created.GetProperty("id").GetString()}");
        var revokedAnswer = await (await client.GetAsync("/api/gym/members")).Content.ReadAsStringAsync();

        var responses = new List<string> { revokedAnswer };
        foreach (var url in new[] { "/api/gym/api-keys", "/api/me", "/api/gym/events?limit=200", "/openapi.json" })
        {
            responses.Add(await owner.GetStringAsync(url));
        }
        responses.Add(await owner.GetStringAsync("/api/gym/webhooks"));
        responses.Add(await owner.GetStringAsync($"/api/gym/webhooks/{webhookId}"));
        responses.Add(await owner.GetStringAsync($"/api/gym/webhooks/{webhookId}/deliveries"));
        var database = await DatabaseDump.AllTextAsync(fx);
        var logs = string.Join("\n", fx.Logs.Lines);
        Assert.True(fx.Logs.Lines.Count > 50, "expected verbose logs to be captured");
        foreach (var candidate in secrets)
        {
            Assert.DoesNotContain(candidate, logs, StringComparison.Ordinal);
            Assert.DoesNotContain(candidate, database, StringComparison.Ordinal);
            Assert.All(responses, r => Assert.DoesNotContain(candidate, r, StringComparison.Ordinal));
        }
    }
}

public abstract class VerboseFixture(Store store) : GymwireFixture(store)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        new("Logging:LogLevel:Default", "Trace"),
        new("Logging:LogLevel:Microsoft", "Trace"),
        new("Logging:LogLevel:Microsoft.EntityFrameworkCore", "Trace"),
    ];
}

public sealed class VerboseSqlite() : VerboseFixture(Store.Sqlite);

public sealed class VerbosePostgres() : VerboseFixture(Store.Postgres);
