using System.Diagnostics;
using System.Net;
using Gymwire.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Gymwire.Tests.Reliability;

/// <summary>
/// R5, the npm half: tools/openapi-fuzz runs Portman over the served OpenAPI document (a request per operation
/// generated from its schemas, plus a variation per operation that breaks the schema's constraints) and Newman
/// sends them all to this live Gymwire as the gym's owner. No answer may be a 5xx, and every request is answered.
/// The hand-written malformed-input battery is <see cref="HostileClientTests"/>.
/// </summary>
public abstract class OpenApiFuzzTests(GymwireFixture fx, ITestOutputHelper log)
{
    public sealed class Sqlite(UnlimitedSqlite f, ITestOutputHelper o) : OpenApiFuzzTests(f, o), IClassFixture<UnlimitedSqlite>;
    public sealed class Postgres(UnlimitedPostgres f, ITestOutputHelper o) : OpenApiFuzzTests(f, o), IClassFixture<UnlimitedPostgres>;

    [Fact]
    public async Task A_portman_fuzzing_pass_over_the_openapi_document_finds_no_5xx()
    {
        var tool = Path.Combine(RepositoryRoot(), "tools", "openapi-fuzz");
        Assert.True(Directory.Exists(Path.Combine(tool, "node_modules", "@apideck", "portman")),
            "tools/openapi-fuzz has no node_modules: scripts/test runs `npm ci` there first");

        var gym = await fx.CreateGymAsync("Fuzzed Gym");
        using var owner = gym.Owner();
        // Some real rows, so list and lookup operations have something to serialize.
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Fuzz Member", user_id = "user_fuzz" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_fuzz", amount_cents = 4900 })).AssertStatusAsync(HttpStatusCode.Created);

        var start = new ProcessStartInfo("node") { WorkingDirectory = tool, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("fuzz.mjs");
        start.ArgumentList.Add(fx.BaseAddress.ToString());
        start.ArgumentList.Add(gym.OwnerToken);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromMinutes(5)).Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        var output = await stdout + await stderr;
        log.WriteLine($"{fx.Store}: {output.Trim()}");
        Assert.True(process.ExitCode == 0, output);
        var summary = System.Text.RegularExpressions.Regex.Match(output, @"openapi-fuzz: (\d+) requests over (\d+) operations, 0 5xx, 0 unanswered");
        Assert.True(summary.Success, output);
        Assert.True(int.Parse(summary.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > int.Parse(summary.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture),
            $"no fuzz variations beside the one request per operation: {output}");
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
