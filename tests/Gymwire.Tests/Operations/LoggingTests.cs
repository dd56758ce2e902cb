using System.Net;
using System.Text.Json;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Operations;

/// <summary>
/// The gymwire executable started as a service manager starts it: from <c>/</c>, not its own folder. It must read the
/// appsettings.json beside it (which keeps EF Core's SQL at Warning) and serve; JSON console logs are one setting away,
/// and a configured content root is honoured.
/// </summary>
public abstract class LoggingTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : LoggingTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : LoggingTests(f), IClassFixture<PostgresGymwire>;

    private static readonly string[] SqlMarkers = ["Executed DbCommand", "SELECT ", "INSERT INTO", "UPDATE ", "PRAGMA ", "Microsoft.EntityFrameworkCore.Database.Command"];

    private const string KestrelHeartbeatSlow = "warn: Microsoft.AspNetCore.Server.Kestrel[22]";

    /// <summary>The console's log entries: each starts with its level and category and goes on over indented lines.</summary>
    private static List<string> Entries(IEnumerable<string> lines)
    {
        var entries = new List<string>();
        foreach (var line in lines)
        {
            if (entries.Count > 0 && line.StartsWith(' '))
            {
                entries[^1] += "\n" + line;
            }
            else
            {
                entries.Add(line);
            }
        }
        return entries;
    }

    private async Task<Dictionary<string, string>> DatabaseEnvironmentAsync()
    {
        var connectionString = await fx.CreateScratchDatabaseAsync();
        var environment = new Dictionary<string, string>
        {
            ["Database__Provider"] = fx.Store == Store.Postgres ? "postgres" : "sqlite",
            ["ConnectionStrings__Gymwire"] = connectionString,
        };
        if (fx.Store == Store.Postgres)
        {
            environment["DataProtection__Key"] = TestKeys.For(connectionString);
        }
        return environment;
    }

    /// <summary>Requests that read and write the database (a sign-in attempt, polls), then the idle loops' few seconds; returns the lines logged while idle.</summary>
    private static async Task<List<string>> ExerciseAsync(ServerProcess server)
    {
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
        using var bad = new HttpRequestMessage(HttpMethod.Get, "/api/zapier/triggers?type=new_member");
        bad.Headers.Authorization = new("Bearer", "cs_not_a_real_key_0000000000000000");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(bad)).StatusCode);
        await (await http.PostJsonAsync("/api/auth/login", new { email = "nobody@example.com", password = "wrong-password-1" })).AssertErrorAsync(HttpStatusCode.Unauthorized);
        var beforeIdle = server.Stdout.Count;
        // Real time, not the fake clock: this is another process, and what is measured is what its own timers log while idle
        // (API-key revocation polls every second, the webhook and SMS workers every few).
        await Task.Delay(TimeSpan.FromSeconds(6));
        return server.Stdout.Skip(beforeIdle).ToList();
    }

    [Fact]
    public async Task Started_from_root_it_serves_and_logs_no_SQL_at_the_default_level()
    {
        Assert.False(File.Exists(Path.Combine("/", "appsettings.json")));
        await using var server = await ServerProcess.StartAsync("/", await DatabaseEnvironmentAsync());
        var idle = await ExerciseAsync(server);

        var log = server.Output;
        Assert.Contains("Now listening on", log, StringComparison.Ordinal);
        foreach (var marker in SqlMarkers)
        {
            Assert.DoesNotContain(marker, log, StringComparison.Ordinal);
        }
        // Quiet while idle: nothing is logged per poll. Kestrel's warning that its heartbeat ran late (event 22) is left
        // out: it says the machine's cores were busy, as two shared ones can be, not that anything logs per poll.
        var logged = Entries(idle).Where(e => !e.StartsWith(KestrelHeartbeatSlow, StringComparison.Ordinal)).ToList();
        Assert.True(logged.Count == 0, $"logged while idle:\n{string.Join("\n", logged)}");
        Assert.DoesNotContain("fail:", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sigterm_stops_it_cleanly_with_exit_code_zero_and_the_node_recorded_as_stopped()
    {
        // What systemctl stop and docker stop send. The command-line parser's own handler would end the process 2 s
        // after it with exit code 143, before the host's shutdown (requests and attempts finishing, claims given back) ran.
        var environment = await DatabaseEnvironmentAsync();
        await using var server = await ServerProcess.StartAsync("/", environment);
        Assert.Equal(0, await server.TerminateAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("Application is shutting down", server.Output, StringComparison.Ordinal);

        string[] sameDatabase = ["--ConnectionStrings:Gymwire=" + environment["ConnectionStrings__Gymwire"],
            .. environment.TryGetValue("DataProtection__Key", out var key) ? ["--DataProtection:Key=" + key] : Array.Empty<string>()];
        var (code, stdout, stderr) = await Foundation.Cli.RunAsync(fx, ["cluster", "status", .. sameDatabase]);
        Assert.True(code == 0, stderr);
        var node = Assert.Single(JsonDocument.Parse(stdout).RootElement.GetProperty("nodes").EnumerateArray());
        Assert.Equal("stopped", node.GetProperty("state").GetString());
    }

    [Fact]
    public async Task Json_console_logs_are_one_setting_away()
    {
        var environment = await DatabaseEnvironmentAsync();
        environment["Logging__Console__FormatterName"] = "json";
        await using var server = await ServerProcess.StartAsync("/", environment);
        await ExerciseAsync(server);

        var lines = server.Stdout.Where(l => l.Length > 0).ToList();
        Assert.NotEmpty(lines);
        var entries = lines.Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Contains(entries, e => e.GetProperty("Message").GetString()!.StartsWith("Now listening on", StringComparison.Ordinal)
            && e.GetProperty("LogLevel").GetString() == "Information" && e.GetProperty("Category").GetString() == "Microsoft.Hosting.Lifetime");
        Assert.DoesNotContain(SqlMarkers[0], server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_configured_content_root_replaces_the_executables_folder()
    {
        var root = Directory.CreateTempSubdirectory("gymwire-content-");
        try
        {
            // Observable: this appsettings.json turns EF Core's SQL log on, which the one beside the executable keeps off.
            await File.WriteAllTextAsync(Path.Combine(root.FullName, "appsettings.json"),
                """{"Logging":{"LogLevel":{"Default":"Warning","Microsoft.EntityFrameworkCore.Database.Command":"Information"}}}""");
            await using var server = await ServerProcess.StartAsync("/", await DatabaseEnvironmentAsync(), $"--contentRoot={root.FullName}");
            Assert.Contains("Executed DbCommand", server.Output, StringComparison.Ordinal);
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }
}
