using System.Diagnostics;
using System.Net;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;

namespace Gymwire.Tests.Zapier;

/// <summary>
/// The Zapier Platform app in integrations/zapier, run by its own tests (node --test, zapier-platform-core's
/// app tester) against this live Gymwire: connection test, the four polling triggers, the three actions, a
/// REST-hook instant trigger that subscribes, receives a real signed delivery and unsubscribes, and an action's 429.
/// </summary>
public sealed class ZapierAppTests(ZapierAppFixture fx) : IClassFixture<ZapierAppFixture>
{
    [Fact]
    public async Task The_zapier_app_tests_pass_against_a_live_gymwire()
    {
        var app = Path.Combine(RepositoryRoot(), "integrations", "zapier");
        Assert.True(Directory.Exists(Path.Combine(app, "node_modules", "zapier-platform-core")),
            "integrations/zapier has no node_modules: scripts/test runs `npm ci` there first");

        var gym = await fx.CreateGymAsync("Zapier Gym");
        using var owner = gym.Owner();
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Zap Member", user_id = "user_zap" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_zap", amount_cents = 4900 })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/sessions", new { user_id = "user_zap", session_type = "gi", date = "2026-04-16", duration_mins = 60 })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/checkins", new { user_id = "user_zap" })).AssertStatusAsync(HttpStatusCode.Created);
        var key = (await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Zapier Production", scopes = new[] { "read", "write" } })).JsonAsync()).GetProperty("key").GetString()!;

        var start = new ProcessStartInfo("node") { WorkingDirectory = app, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("--test");
        start.ArgumentList.Add("test/");
        start.Environment["GYMWIRE_BASE_URL"] = fx.BaseAddress.ToString().TrimEnd('/');
        start.Environment["GYMWIRE_API_KEY"] = key;
        start.Environment["GYMWIRE_KEY_NAME"] = "Zapier Production";
        start.Environment["GYMWIRE_USER_ID"] = "user_zap";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token);
        var output = await stdout + await stderr;
        Assert.True(process.ExitCode == 0, output);
        Assert.Contains("# fail 0", output, StringComparison.Ordinal);
        Assert.Matches(@"# pass [1-9]", output);
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Gymwire.slnx")))
        {
            dir = dir.Parent;
        }
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }
}

/// <summary>
/// The webhook fixture with a window for actions other than a minute, the app's fallback delay: the app's test of a 429
/// can tell that Zapier is told Gymwire's <c>Retry-After</c>.
/// </summary>
public sealed class ZapierAppFixture() : WebhookFixture(Store.Sqlite)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [.. base.Settings(), new("RateLimiting:Actions:Window", "00:01:30")];
}
