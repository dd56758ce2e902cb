using System.IO.Compression;
using System.Net;
using System.Xml.Linq;
using Gymwire.Client;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Xunit.Abstractions;
using static Gymwire.Tests.Infrastructure.ExternalTool;

namespace Gymwire.Tests.Client;

/// <summary>
/// Gymwire.Client as a user gets it: <c>dotnet pack</c> makes a package with its metadata, README and XML docs; a fresh
/// console app (tools/client-consumer) restores it from a local folder feed (a nuget.config adding the folder beside
/// the usual source), is published with Native AOT (trimmed and compiled ahead of time) with every trim and AOT warning
/// an error, and against this live Gymwire calls a trigger and an action, reads an error, lists its key's webhooks
/// (one the owner described and switched off, read with Gymwire's own fields), and verifies and parses a real webhook delivery. SQLite only: the client is the subject, not the store.
/// </summary>
public sealed class ClientPackageTests(SqliteWebhooks fx, ITestOutputHelper log) : IClassFixture<SqliteWebhooks>
{
    [Fact]
    public async Task The_packed_client_restored_from_a_local_feed_works_in_a_native_aot_app()
    {
        var work = Directory.CreateTempSubdirectory("gymwire-client-").FullName;
        // The project's version with a suffix of its own, so that no copy in the machine's package cache from an earlier run stands in for this one.
        var project = XDocument.Load(Path.Combine(RepositoryRoot, "src", "Gymwire.Client", "Gymwire.Client.csproj"));
        var version = $"{project.Descendants("Version").Single().Value}-test.{DateTime.UtcNow:yyyyMMddHHmmssfff}";
        try
        {
            var feed = Path.Combine(work, "feed");
            var (code, output) = await RunAsync("dotnet", ["pack", Path.Combine(RepositoryRoot, "src", "Gymwire.Client", "Gymwire.Client.csproj"),
                "-c", "Release", "--no-build", "-nologo", "-o", feed, $"-p:PackageVersion={version}"], RepositoryRoot, TimeSpan.FromMinutes(2));
            Assert.True(code == 0, output);
            AssertPackage(Path.Combine(feed, $"Gymwire.Client.{version}.nupkg"), version);

            var gym = await fx.CreateGymAsync("Packaged Client Gym");
            using var owner = gym.Owner();
            await (await owner.PostJsonAsync("/api/gym/members", new { name = "Packaged", user_id = "user_packaged" })).AssertStatusAsync(HttpStatusCode.Created);
            var created = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "trimmed", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
            var key = created.GetProperty("key").GetString()!;
            var keyId = created.GetProperty("id").GetGuid();
            // A real delivery for the app to verify.
            await using var receiver = await TestReceiver.StartAsync();
            var hook = await new GymwireClient(fx.Client(), gym.OwnerToken).CreateWebhookAsync(new CreateWebhook(receiver.Url("/hook"), ["lead.created"]));
            // A webhook of the app's key that the owner described and switched off, for the app to list.
            var keyHook = await new GymwireClient(fx.Client(), key).CreateWebhookAsync(new CreateWebhook("https://receiver.example.com/switched-off"));
            await (await owner.PatchJsonAsync($"/api/gym/webhooks/{keyHook.Id}", new { description = "Described", is_active = false })).AssertStatusAsync(HttpStatusCode.OK);
            await (await owner.PostJsonAsync("/api/gym/leads", new { first_name = "Delivered" })).AssertStatusAsync(HttpStatusCode.Created);
            var delivery = Assert.Single(await receiver.WaitForAsync("/hook", 1));
            var deliveryDir = Path.Combine(work, "delivery");
            Directory.CreateDirectory(deliveryDir);
            await File.WriteAllBytesAsync(Path.Combine(deliveryDir, "body"), delivery.Body);
            await File.WriteAllLinesAsync(Path.Combine(deliveryDir, "headers"), delivery.Headers.Select(h => $"{h.Key}: {h.Value}"));

            var app = Path.Combine(work, "app");
            CopyFiles(Path.Combine(RepositoryRoot, "tools", "client-consumer"), app);
            // Adds the folder; the sources the machine already has (the usual one) stay.
            await File.WriteAllTextAsync(Path.Combine(app, "nuget.config"),
                $"""<?xml version="1.0" encoding="utf-8"?><configuration><packageSources><add key="gymwire-local" value="{feed}" /></packageSources></configuration>""");
            (code, output) = await RunAsync("dotnet", ["publish", app, "-c", "Release", "-r", "linux-x64", "-nologo", "-o", Path.Combine(work, "out"),
                $"-p:GymwireClientVersion={version}"], work, TimeSpan.FromMinutes(4));
            log.WriteLine(output);
            Assert.True(code == 0, output);
            Assert.DoesNotContain("warning IL", output, StringComparison.Ordinal);

            (code, output) = await RunAsync(Path.Combine(work, "out", "ClientConsumer"), [fx.BaseAddress.ToString(), key, hook.Secret, deliveryDir], work, TimeSpan.FromMinutes(1));
            log.WriteLine(output);
            Assert.True(code == 0, output);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.Contains("me api_key read,write", lines);
            Assert.Contains("member user_packaged 2026-04-16T12:00:00.0000000+00:00", lines);
            Assert.Contains(lines, l => l.StartsWith("lead ", StringComparison.Ordinal) && l.EndsWith(" Trimmed trimmed-app", StringComparison.Ordinal));
            Assert.Contains("error 401 True", lines);
            Assert.Contains($"listed https://receiver.example.com/switched-off False True {keyId} True Described", lines);
            Assert.Contains("webhook True False lead.created False False", lines);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
            var cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            var cached = Path.Combine(cache, "gymwire.client", version);
            if (Directory.Exists(cached))
            {
                Directory.Delete(cached, recursive: true);
            }
        }
    }

    private static void AssertPackage(string path, string version)
    {
        using var package = ZipFile.OpenRead(path);
        var entries = package.Entries.Select(e => e.FullName).ToList();
        Assert.Contains("lib/net10.0/Gymwire.Client.dll", entries);
        Assert.Contains("lib/net10.0/Gymwire.Client.xml", entries);
        Assert.Contains("README.md", entries);
        using var nuspecStream = package.GetEntry("Gymwire.Client.nuspec")!.Open();
        var metadata = XDocument.Load(nuspecStream).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        string Value(string name) => metadata.Elements().Single(e => e.Name.LocalName == name).Value;
        Assert.Equal("Gymwire.Client", Value("id"));
        Assert.Equal(version, Value("version"));
        Assert.Equal("MIT", Value("license"));
        Assert.Equal("expression", metadata.Elements().Single(e => e.Name.LocalName == "license").Attribute("type")!.Value);
        Assert.Equal("README.md", Value("readme"));
        Assert.False(string.IsNullOrWhiteSpace(Value("description")));
        Assert.False(string.IsNullOrWhiteSpace(metadata.Elements().Single(e => e.Name.LocalName == "repository").Attribute("url")!.Value));
    }
}
