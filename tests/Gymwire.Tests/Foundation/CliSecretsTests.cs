using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gymwire.Features.Demo;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Foundation;

/// <summary>
/// The admin commands keep passwords off the command line, where every local user reads them in <c>ps</c>
/// (<c>/proc/PID/cmdline</c>), and <c>demo</c> adds no owner with a published password to a database that serves other gyms.
/// </summary>
public abstract class CliSecretsTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : CliSecretsTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : CliSecretsTests(f), IClassFixture<PostgresGymwire>;

    private static readonly Dictionary<string, string> NoEnvironment = [];

    [Fact]
    public async Task Gyms_create_reads_the_owner_password_from_stdin_and_its_command_line_holds_none()
    {
        var email = $"cli-{Guid.NewGuid():N}@example.com";
        const string password = "stdin-password-4711";
        string? commandLine = null;
        var (code, stdout, stderr) = await Cli.RunWithInputAsync(fx, NoEnvironment, password + "\n", p => commandLine = CommandLineOf(p),
            "gyms", "create", "--name", "Stdin Gym", "--owner-email", email, "--owner-password-stdin");
        Assert.True(code == 0, stderr);
        Assert.Contains("--owner-password-stdin", commandLine, StringComparison.Ordinal);
        Assert.DoesNotContain(password, commandLine, StringComparison.Ordinal);
        Assert.DoesNotContain(password, stdout + stderr, StringComparison.Ordinal);
        var gymId = JsonDocument.Parse(stdout).RootElement.GetProperty("gym_id").GetGuid();
        var login = await fx.Client().PostAsJsonAsync("/api/auth/login", new { email, password });
        Assert.Equal(gymId, (await login.AssertStatusAsync(HttpStatusCode.OK)).GetProperty("gym_id").GetGuid());
    }

    [Fact]
    public async Task Gyms_create_without_a_password_on_redirected_input_or_with_two_is_refused_and_creates_nothing()
    {
        var email = $"cli-{Guid.NewGuid():N}@example.com";
        // Input that is not a terminal and no option asking to read it: not taken as a password.
        var (none, noneOut, noneErr) = await Cli.RunWithInputAsync(fx, NoEnvironment, "stdin-password-4711\n", null,
            "gyms", "create", "--name", "No Password", "--owner-email", email);
        Assert.Equal(1, none);
        Assert.Equal("", noneOut.Trim());
        Assert.Equal("error: a password is required: --owner-password-stdin reads it from standard input", noneErr.Trim());

        var (empty, _, emptyErr) = await Cli.RunWithInputAsync(fx, NoEnvironment, "\n", null,
            "gyms", "create", "--name", "Empty Password", "--owner-email", email, "--owner-password-stdin");
        Assert.Equal(1, empty);
        Assert.Equal("error: no password on standard input (one line was expected)", emptyErr.Trim());

        var (both, _, bothErr) = await Cli.RunWithInputAsync(fx, NoEnvironment, "stdin-password-4711\n", null,
            "gyms", "create", "--name", "Two Passwords", "--owner-email", email, "--owner-password", "argv-password-4711", "--owner-password-stdin");
        Assert.Equal(1, both);
        Assert.Contains("not both", bothErr, StringComparison.Ordinal);

        Assert.False(await fx.WithDbAsync(db => db.Users.AnyAsync(u => u.Email == email)));
    }

    [Fact]
    public async Task Reset_password_reads_the_new_password_from_stdin_and_its_command_line_holds_none()
    {
        var gym = await fx.CreateGymAsync();
        const string password = "reset-from-stdin-0815";
        string? commandLine = null;
        var (code, stdout, stderr) = await Cli.RunWithInputAsync(fx, NoEnvironment, password + "\n", p => commandLine = CommandLineOf(p),
            "reset-password", "--email", gym.OwnerEmail, "--password-stdin");
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain(password, commandLine, StringComparison.Ordinal);
        var output = JsonDocument.Parse(stdout).RootElement;
        Assert.True(output.GetProperty("password_reset").GetBoolean());
        Assert.False(output.TryGetProperty("new_password", out _)); // the operator chose it: nothing to print
        await (await fx.Client().PostAsJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password })).AssertStatusAsync(HttpStatusCode.OK);
        await (await fx.Client().PostAsJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = gym.OwnerPassword }))
            .AssertErrorAsync(HttpStatusCode.Unauthorized);

        // Nothing on standard input: refused, and the password stays as it was.
        var (empty, _, emptyErr) = await Cli.RunWithInputAsync(fx, NoEnvironment, "", null, "reset-password", "--email", gym.OwnerEmail, "--password-stdin");
        Assert.Equal(1, empty);
        Assert.StartsWith("error: no password on standard input", emptyErr.Trim(), StringComparison.Ordinal);
        await (await fx.Client().PostAsJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password })).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Demo_refuses_a_database_that_holds_other_gyms_and_changes_nothing()
    {
        await fx.CreateGymAsync();
        var gyms = await fx.WithDbAsync(db => db.Gyms.CountAsync());
        var demoGyms = await fx.WithDbAsync(db => db.Users.CountAsync(u => u.Email == DemoSeeder.OwnerEmail));

        var (code, stdout, stderr) = await Cli.RunAsync(fx, "demo");
        Assert.Equal(1, code);
        Assert.Equal("", stdout.Trim());
        var line = Assert.Single(stderr.Split('\n'), l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.StartsWith("error: this database holds ", line, StringComparison.Ordinal);
        Assert.Contains("--alongside-other-gyms", line, StringComparison.Ordinal);
        Assert.Equal(gyms, await fx.WithDbAsync(db => db.Gyms.CountAsync()));
        Assert.Equal(demoGyms, await fx.WithDbAsync(db => db.Users.CountAsync(u => u.Email == DemoSeeder.OwnerEmail)));
    }

    [Fact]
    public async Task Demo_on_a_database_of_its_own_needs_no_option_and_runs_again()
    {
        // The README's quick start: `demo` on a new database, then again (it finds its own gym).
        var database = await fx.CreateScratchDatabaseAsync();
        var (code, stdout, stderr) = await Cli.RunAsync(fx, "demo", $"--ConnectionStrings:Gymwire={database}");
        Assert.True(code == 0, stderr);
        var first = JsonDocument.Parse(stdout).RootElement;
        Assert.True(first.GetProperty("created").GetBoolean());
        var (again, againOut, againErr) = await Cli.RunAsync(fx, "demo", $"--ConnectionStrings:Gymwire={database}");
        Assert.True(again == 0, againErr);
        var second = JsonDocument.Parse(againOut).RootElement;
        Assert.False(second.GetProperty("created").GetBoolean());
        Assert.Equal(first.GetProperty("gym_id").GetGuid(), second.GetProperty("gym_id").GetGuid());
    }

    /// <summary>What <c>ps</c> shows of a process: its <c>/proc/PID/cmdline</c>, arguments separated by spaces.</summary>
    // Process.Start returns once exec has begun; until the kernel has set up the new program's arguments,
    // /proc/PID/cmdline reads empty. The child waits for its input, so it is still there.
    private static string CommandLineOf(Process process)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var commandLine = File.ReadAllText($"/proc/{process.Id}/cmdline").Replace('\0', ' ');
            if (commandLine.Length > 0 || DateTime.UtcNow > deadline)
            {
                return commandLine;
            }
            Thread.Sleep(1);
        }
    }
}
