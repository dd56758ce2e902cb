using System.Net;
using System.Text.Json;
using Gymwire.Tests.Infrastructure;
using Xunit.Abstractions;
using static Gymwire.Tests.Infrastructure.ExternalTool;

namespace Gymwire.Tests.OpenApi;

/// <summary>
/// The served <c>/openapi.json</c> is something the generators users use accept: a C# client from Kiota (the local
/// dotnet tool in .config/dotnet-tools.json) and TypeScript types from openapi-typescript (tools/openapi-clients,
/// with openapi-fetch) are generated from it, compiled with warnings as errors (C#) and <c>tsc --strict</c>, and call
/// a trigger and an action on this live Gymwire. Each test generates once. SQLite only: the document and the
/// generated code are the same whichever store serves them.
/// </summary>
public sealed class GeneratedClientTests(SqliteGymwire fx, ITestOutputHelper log) : IClassFixture<SqliteGymwire>
{
    private static readonly string Tools = Path.Combine(RepositoryRoot, "tools", "openapi-clients");

    /// <summary>A gym with one member (<c>user_generated</c>) who paid 49.00, and a read/write API key.</summary>
    private async Task<(TestGym Gym, string Key)> SeedAsync()
    {
        var gym = await fx.CreateGymAsync("Generated Clients Gym");
        using var owner = gym.Owner();
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Generated Member", user_id = "user_generated" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_generated", amount_cents = 4900 })).AssertStatusAsync(HttpStatusCode.Created);
        var key = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "generated", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        return (gym, key.GetProperty("key").GetString()!);
    }

    private async Task AssertLeadAsync(TestGym gym, string line, string firstName, string source)
    {
        using var owner = gym.Owner();
        var leads = (await (await owner.GetAsync("/api/gym/leads")).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("leads").EnumerateArray().ToList();
        var lead = Assert.Single(leads, l => l.GetProperty("first_name").GetString() == firstName);
        Assert.Equal(source, lead.GetProperty("source").GetString());
        Assert.Equal($"lead {lead.GetProperty("id").GetString()} {firstName} {source}", line);
    }

    [Fact]
    public async Task A_kiota_csharp_client_generated_from_the_served_document_compiles_and_calls_a_trigger_and_an_action()
    {
        var (gym, key) = await SeedAsync();
        var work = Directory.CreateTempSubdirectory("gymwire-kiota-").FullName;
        try
        {
            var document = Path.Combine(work, "openapi.json");
            await File.WriteAllTextAsync(document, await fx.Client().GetStringAsync("/openapi.json"));
            var app = Path.Combine(work, "app");
            CopyFiles(Path.Combine(Tools, "kiota"), app);

            // Offline: no check for a newer Kiota (this machine reaches package registries only).
            var offline = new Dictionary<string, string> { ["KIOTA_OFFLINE_ENABLED"] = "true" };
            var (restoreCode, restore) = await RunAsync("dotnet", ["tool", "restore"], RepositoryRoot, TimeSpan.FromMinutes(2));
            Assert.True(restoreCode == 0, restore);
            var (code, output) = await RunAsync("dotnet", ["tool", "run", "kiota", "generate", "--language", "CSharp", "--openapi", document,
                "--output", Path.Combine(app, "Generated"), "--namespace-name", "Gymwire.Generated", "--class-name", "GymwireApiClient",
                "--exclude-backward-compatible", "--log-level", "Warning"], RepositoryRoot, TimeSpan.FromMinutes(2), offline);
            log.WriteLine(output);
            Assert.True(code == 0, output);

            (code, output) = await RunAsync("dotnet", ["build", app, "-c", "Release", "-nologo", "-clp:ErrorsOnly", "-o", Path.Combine(work, "out")], work, TimeSpan.FromMinutes(3));
            Assert.True(code == 0, output);

            (code, output) = await RunAsync("dotnet", [Path.Combine(work, "out", "KiotaConsumer.dll"), fx.BaseAddress.ToString().TrimEnd('/'), key], work, TimeSpan.FromMinutes(1));
            log.WriteLine(output);
            Assert.True(code == 0, output);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.Equal("member user_generated 2026-04-16T12:00:00.0000000+00:00", Assert.Single(lines, l => l.StartsWith("member ", StringComparison.Ordinal)));
            Assert.Equal("payment user_generated 4900 paid", Assert.Single(lines, l => l.StartsWith("payment ", StringComparison.Ordinal)));
            await AssertLeadAsync(gym, Assert.Single(lines, l => l.StartsWith("lead ", StringComparison.Ordinal)), "Kiota", "generated-csharp");
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    [Fact]
    public async Task An_openapi_typescript_client_generated_from_the_served_document_type_checks_and_calls_a_trigger_and_an_action()
    {
        Assert.True(Directory.Exists(Path.Combine(Tools, "node_modules", "openapi-typescript")),
            "tools/openapi-clients has no node_modules: scripts/test runs `npm ci` there first");
        var (gym, key) = await SeedAsync();
        var generated = Path.Combine(Tools, "generated");
        if (Directory.Exists(generated))
        {
            Directory.Delete(generated, recursive: true);
        }
        Directory.CreateDirectory(generated);
        await File.WriteAllTextAsync(Path.Combine(generated, "openapi.json"), await fx.Client().GetStringAsync("/openapi.json"));

        var (code, output) = await RunAsync("node", [Path.Combine("node_modules", "openapi-typescript", "bin", "cli.js"), Path.Combine("generated", "openapi.json"),
            "--output", Path.Combine("generated", "schema.d.ts")], Tools, TimeSpan.FromMinutes(1));
        log.WriteLine(output);
        Assert.True(code == 0, output);
        // Every operation and schema made it into the types.
        var types = await File.ReadAllTextAsync(Path.Combine(generated, "schema.d.ts"));
        var paths = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(generated, "openapi.json"))).RootElement.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToList();
        Assert.All(paths, p => Assert.Contains($"\"{p}\": {{", types, StringComparison.Ordinal));
        // No field came out as `unknown` (JSON-object fields are `{ [name: string]: unknown }`, which is right).
        Assert.DoesNotMatch(@"(?m)^\s+""?\w+""?\??: unknown;", types);

        (code, output) = await RunAsync("node", [Path.Combine("node_modules", "typescript", "bin", "tsc"), "--project", "tsconfig.json"], Tools, TimeSpan.FromMinutes(2));
        Assert.True(code == 0, output);

        (code, output) = await RunAsync("node", [Path.Combine("generated", "client.js"), fx.BaseAddress.ToString().TrimEnd('/'), key], Tools, TimeSpan.FromMinutes(1));
        log.WriteLine(output);
        Assert.True(code == 0, output);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal("member user_generated 2026-04-16T12:00:00.000Z", Assert.Single(lines, l => l.StartsWith("member ", StringComparison.Ordinal)));
        Assert.Equal("payment user_generated 4900 paid", Assert.Single(lines, l => l.StartsWith("payment ", StringComparison.Ordinal)));
        await AssertLeadAsync(gym, Assert.Single(lines, l => l.StartsWith("lead ", StringComparison.Ordinal)), "TypeScript", "generated-typescript");
    }
}
