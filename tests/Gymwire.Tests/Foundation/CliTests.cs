using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Foundation;

/// <summary>The gymwire executable's admin commands, run as real processes against a real database.</summary>
public abstract class CliTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : CliTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : CliTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Gyms_create_prints_ids_and_the_owner_can_log_in()
    {
        var email = $"cli-{Guid.NewGuid():N}@example.com";
        var (code, stdout, stderr) = await Cli.RunAsync(fx, "gyms", "create", "--name", "CLI Gym", "--owner-email", email, "--owner-password", "cli-password-123");
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        var gymId = json.GetProperty("gym_id").GetGuid();
        Assert.NotEqual(Guid.Empty, json.GetProperty("owner_id").GetGuid());
        var login = await fx.Client().PostAsJsonAsync("/api/auth/login", new { email, password = "cli-password-123" });
        Assert.Equal(gymId, (await login.AssertStatusAsync(HttpStatusCode.OK)).GetProperty("gym_id").GetGuid());
    }

    [Fact]
    public async Task Gyms_create_reports_bad_input_on_stderr_with_a_nonzero_exit()
    {
        var (code, stdout, stderr) = await Cli.RunAsync(fx, "gyms", "create", "--name", "X", "--owner-email", "not-an-email", "--owner-password", "cli-password-123");
        Assert.NotEqual(0, code);
        Assert.Equal("", stdout.Trim());
        Assert.Contains("owner_email", stderr, StringComparison.Ordinal);

        var (missing, _, missingErr) = await Cli.RunAsync(fx, "gyms", "create", "--name", "X");
        Assert.NotEqual(0, missing);
        Assert.Contains("--owner-email", missingErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_on_a_new_database_logs_no_error_or_warning()
    {
        // What an operator sees on the first start: an error line there reads as a failed installation, and a warning
        // as a problem to look into (EF Core's SQLite rebuild warning asked for a manual repair; see SqliteUpgradeTests).
        var database = await NewDatabaseAsync();
        var (code, stdout, stderr) = await Cli.RunAsync(fx, "migrate", $"--ConnectionStrings:Gymwire={database}");
        Assert.True(code == 0, stderr);
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("migrated").GetBoolean());
        Assert.DoesNotContain("warn:", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("fail:", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("crit:", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Admin_commands_log_no_information_but_the_notice_to_back_up_a_new_key_file()
    {
        // appsettings.json beside the executable sets Logging:LogLevel:Default to Information, for the server.
        var database = await NewDatabaseAsync();
        var (code, stdout, stderr) = await Cli.RunAsync(fx, "migrate", $"--ConnectionStrings:Gymwire={database}");
        Assert.True(code == 0, stderr);
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("migrated").GetBoolean());
        var information = InformationLines(stderr);
        if (fx.Store == Store.Sqlite)
        {
            // The new SQLite database's key file was made beside it: the one line the operator must act on.
            var created = Assert.Single(information);
            Assert.Contains("[1102]", created, StringComparison.Ordinal);
            Assert.Contains("Back it up", stderr, StringComparison.Ordinal);
        }
        else
        {
            Assert.Empty(information); // PostgreSQL is given its key, and never makes one
        }
        Assert.DoesNotContain("[1101]", stderr, StringComparison.Ordinal);

        // Once the key file exists, an admin command prints its JSON and nothing on stderr.
        var (again, againOut, againErr) = await Cli.RunAsync(fx, "cluster", "status", $"--ConnectionStrings:Gymwire={database}");
        Assert.True(again == 0, againErr);
        Assert.Equal(0, JsonDocument.Parse(againOut).RootElement.GetProperty("live").GetInt32());
        Assert.Equal("", againErr);
    }

    /// <summary>The console log's lines below Warning (each entry's first line: "info: Category[EventId]").</summary>
    private static List<string> InformationLines(string stderr) =>
        [.. stderr.Split('\n').Where(l => l.StartsWith("info:", StringComparison.Ordinal) || l.StartsWith("dbug:", StringComparison.Ordinal) || l.StartsWith("trce:", StringComparison.Ordinal))];

    [Fact]
    public async Task Three_nodes_starting_at_once_on_a_database_that_does_not_exist_yet_all_migrate_it()
    {
        // Several nodes (or replicas of a deployment) starting together each create (PostgreSQL: if missing) and migrate
        // the database. Without a lock around the whole run, PostgreSQL nodes applied the same migration twice and all
        // but one failed (in most tries).
        var database = await NewDatabaseAsync();
        var runs = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Cli.RunAsync(fx, "migrate", $"--ConnectionStrings:Gymwire={database}")));
        foreach (var (code, stdout, stderr) in runs)
        {
            Assert.True(code == 0, stderr);
            Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("migrated").GetBoolean());
        }
        var (again, _, againErr) = await Cli.RunAsync(fx, "migrate", $"--ConnectionStrings:Gymwire={database}");
        Assert.True(again == 0, againErr);
    }

    [Fact]
    public async Task With_migrate_on_start_off_commands_leave_a_database_behind_alone_and_say_to_migrate()
    {
        // An operator who migrates from a deploy step turns Database:MigrateOnStart off on every node; an admin command
        // run there (or a new node started early) must neither migrate nor work against a schema it does not know.
        var database = await NewDatabaseAsync();
        string[] off = [$"--ConnectionStrings:Gymwire={database}", "--Database:MigrateOnStart=false"];
        var (status, statusOut, statusErr) = await Cli.RunAsync(fx, ["cluster", "status", .. off]);
        Assert.Equal(2, status);
        Assert.Equal("", statusOut.Trim());
        Assert.Contains("gymwire migrate", statusErr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", statusErr, StringComparison.Ordinal);
        var (serve, _, serveErr) = await Cli.RunAsync(fx, ["serve", "--urls=http://127.0.0.1:0", .. off]);
        Assert.Equal(2, serve);
        Assert.Contains("gymwire migrate", serveErr, StringComparison.Ordinal);
        // An invalid setting: the same one line as the admin commands give, not the host's failure with a stack trace.
        var (invalid, _, invalidErr) = await Cli.RunAsync(fx, ["serve", "--urls=http://127.0.0.1:0", "--Webhooks:MaxConcurrentDeliveries=0"]);
        Assert.Equal(2, invalid);
        Assert.StartsWith("error: invalid configuration: ", invalidErr.Trim(), StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", invalidErr, StringComparison.Ordinal);
        var (keys, _, keysErr) = await Cli.RunAsync(fx, ["api-keys", "create", "--gym", Guid.NewGuid().ToString(), "--name", "early", .. off]);
        Assert.Equal(2, keys);
        Assert.Contains("gymwire migrate", keysErr, StringComparison.Ordinal);

        // `migrate` migrates whatever the setting; then the same commands run.
        var (migrated, _, migrateErr) = await Cli.RunAsync(fx, ["migrate", .. off]);
        Assert.True(migrated == 0, migrateErr);
        var (after, afterOut, afterErr) = await Cli.RunAsync(fx, ["cluster", "status", .. off]);
        Assert.True(after == 0, afterErr);
        JsonDocument.Parse(afterOut);
    }

    [Fact]
    public async Task Unknown_options_and_commands_are_refused_and_change_nothing()
    {
        // Settings pass through as --Section:Key=value; anything else unknown would be ignored: a key created without the expiry
        // asked for, a gym in the wrong time zone, a misspelt command starting the server.
        var email = $"cli-{Guid.NewGuid():N}@example.com";
        var (gym, _, gymErr) = await Cli.RunAsync(fx, "gyms", "create", "--name", "Typo", "--owner-email", email, "--owner-password", "cli-password-123", "--timezone", "Europe/Berlin");
        Assert.Equal(1, gym);
        Assert.Contains("--timezone", gymErr, StringComparison.Ordinal);
        await (await fx.Client().PostAsJsonAsync("/api/auth/login", new { email, password = "cli-password-123" })).AssertErrorAsync(HttpStatusCode.Unauthorized);

        var (key, keyOut, keyErr) = await Cli.RunAsync(fx, "api-keys", "create", "--gym", Guid.NewGuid().ToString(), "--scope", "write", "--expires", "2027-01-01");
        Assert.Equal(1, key);
        Assert.Equal("", keyOut.Trim());
        Assert.Contains("--scope", keyErr, StringComparison.Ordinal);

        var (command, _, commandErr) = await Cli.RunAsync(fx, "bakup", "--to", Path.Combine(Path.GetTempPath(), $"gymwire-{Guid.NewGuid():N}.db"));
        Assert.Equal(1, command);
        Assert.Contains("bakup", commandErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_value_or_a_missing_option_is_one_error_line_and_changes_nothing()
    {
        // The parser's own answer was its message, the whole help and a stray "Additional Arguments" section.
        var gymId = (await fx.CreateGymAsync()).GymId;
        var gym = gymId.ToString();
        (string[] Args, string Error)[] cases =
        [
            (["api-keys", "create", "--gym", "nope"],
                "error: --gym takes an id such as 3f2b8c1e-5d7a-4e9b-8c6d-1a2b3c4d5e6f, not 'nope' (see gymwire api-keys create --help)"),
            (["api-keys", "revoke", "--gym", gym, "--id", "42"],
                "error: --id takes an id such as 3f2b8c1e-5d7a-4e9b-8c6d-1a2b3c4d5e6f, not '42' (see gymwire api-keys revoke --help)"),
            (["api-keys", "create", "--gym", gym, "--expires-at", "next week"],
                "error: --expires-at takes an ISO-8601 time such as 2027-01-31T18:00:00Z, not 'next week' (see gymwire api-keys create --help)"),
            (["api-keys", "create", "--name", "No gym"], "error: Option '--gym' is required (see gymwire api-keys create --help)"),
            (["api-keys"], "error: Required command was not provided (see gymwire api-keys --help)"),
            (["backup"], "error: Option '--to' is required (see gymwire backup --help)"),
        ];
        foreach (var (args, error) in cases)
        {
            var (code, stdout, stderr) = await Cli.RunAsync(fx, args);
            Assert.True(code == 1, $"{string.Join(' ', args)}: exit {code}\n{stderr}");
            Assert.Equal("", stdout);
            Assert.Equal(error, stderr.TrimEnd('\n'));
        }
        Assert.False(await fx.WithDbAsync(db => db.ApiKeys.AnyAsync(k => k.GymId == gymId)));
    }

    [Fact]
    public async Task Help_says_how_settings_are_given()
    {
        foreach (var args in new[] { new[] { "--help" }, ["api-keys", "create", "--help"] })
        {
            var (code, stdout, stderr) = await Cli.RunAsync(fx, args);
            Assert.True(code == 0, stderr);
            Assert.Contains(args.Length == 1 ? "  gymwire [command] [options] [--Section:Key=value ...]" : "  gymwire api-keys create [options] [--Section:Key=value ...]",
                stdout, StringComparison.Ordinal);
            Assert.Contains("Settings:", stdout, StringComparison.Ordinal);
            Assert.DoesNotContain("Additional Arguments", stdout, StringComparison.Ordinal);
            Assert.Contains("--help", stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task An_argument_starting_with_at_is_itself_not_a_file_to_read()
    {
        var email = $"cli-{Guid.NewGuid():N}@example.com";
        var (code, stdout, stderr) = await Cli.RunAsync(fx, "gyms", "create", "--name", "@Home Gym", "--owner-email", email, "--owner-password", "@Secret-Pass-123");
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain("Secret-Pass", stderr, StringComparison.Ordinal);
        JsonDocument.Parse(stdout);
        await (await fx.Client().PostAsJsonAsync("/api/auth/login", new { email, password = "@Secret-Pass-123" })).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task An_expiry_without_an_offset_is_utc_whatever_the_machines_time_zone()
    {
        var email = $"cli-{Guid.NewGuid():N}@example.com";
        var (_, gymOut, gymErr) = await Cli.RunAsync(fx, "gyms", "create", "--name", "Expiry", "--owner-email", email, "--owner-password", "cli-password-123");
        var gymId = JsonDocument.Parse(gymOut.Length > 0 ? gymOut : throw new InvalidOperationException(gymErr)).RootElement.GetProperty("gym_id").GetString()!;
        var (code, stdout, stderr) = await Cli.RunAsync(fx, new Dictionary<string, string> { ["TZ"] = "Europe/Berlin" },
            "api-keys", "create", "--gym", gymId, "--expires-at", "2027-01-01T00:00:00");
        Assert.True(code == 0, stderr);
        Assert.Equal(new DateTime(2027, 1, 1, 0, 0, 0, DateTimeKind.Utc), JsonDocument.Parse(stdout).RootElement.GetProperty("expires_at").GetDateTime().ToUniversalTime());
    }

    [Fact]
    public async Task A_database_it_cannot_reach_is_an_error_line_not_a_stack_trace()
    {
        var unreachable = fx.Store == Store.Postgres
            ? new Npgsql.NpgsqlConnectionStringBuilder(fx.ConnectionString) { Port = 9, Timeout = 3 }.ConnectionString
            : $"Data Source={Path.Combine(Path.GetTempPath(), $"gymwire-missing-{Guid.NewGuid():N}", "gymwire.db")}";
        var (code, stdout, stderr) = await Cli.RunAsync(fx, "migrate", $"--ConnectionStrings:Gymwire={unreachable}");
        Assert.Equal(2, code);
        Assert.Equal("", stdout.Trim());
        Assert.StartsWith("error: cannot open the database", stderr.TrimStart(), StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task Serve_on_an_address_in_use_is_one_error_line_naming_the_address()
    {
        using var taken = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var url = $"http://127.0.0.1:{((IPEndPoint)taken.LocalEndpoint).Port}";
        var (code, _, stderr) = await Cli.RunAsync(fx, "serve", $"--urls={url}");
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", stderr.Trim(), StringComparison.Ordinal);
        Assert.Contains(url, stderr, StringComparison.Ordinal);
        Assert.Contains("address already in use", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task Serve_with_a_certificate_it_cannot_load_is_one_error_line_naming_the_file_not_the_password()
    {
        var directory = Directory.CreateTempSubdirectory("gymwire-cert-").FullName;
        var missing = Path.Combine(directory, "missing.pem");
        var pfx = Path.Combine(directory, "gymwire.pfx");
        using (var key = System.Security.Cryptography.RSA.Create(2048))
        {
            var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=localhost", key,
                System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
            using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
            await File.WriteAllBytesAsync(pfx, certificate.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pfx, "the-right-password"));
        }
        const string wrongPassword = "a-wrong-password-5c2e";
        foreach (var (path, password) in new[] { (missing, ""), (pfx, wrongPassword) })
        {
            var (code, _, stderr) = await Cli.RunAsync(fx, "serve", "--Kestrel:Endpoints:Https:Url=https://127.0.0.1:0",
                $"--Kestrel:Endpoints:Https:Certificate:Path={path}", $"--Kestrel:Endpoints:Https:Certificate:Password={password}");
            Assert.True(code == 2, $"{path}: exit {code}, {stderr}");
            Assert.StartsWith("error: cannot load the HTTPS certificate", stderr.Trim(), StringComparison.Ordinal);
            Assert.Contains(path, stderr, StringComparison.Ordinal);
            Assert.DoesNotContain(wrongPassword, stderr, StringComparison.Ordinal);
            Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        Directory.Delete(directory, recursive: true);
    }

    /// <summary>A connection string to a database that does not exist yet (PostgreSQL: a new name; SQLite: a new file).</summary>
    private async Task<string> NewDatabaseAsync()
    {
        var scratch = await fx.CreateScratchDatabaseAsync();
        if (fx.Store != Store.Postgres)
        {
            return scratch;
        }
        return new Npgsql.NpgsqlConnectionStringBuilder(scratch) { Database = "gymwire_new_" + Guid.NewGuid().ToString("N")[..12] }.ConnectionString;
    }

    [Fact]
    public async Task Migrate_is_idempotent_on_an_existing_database()
    {
        var (code, stdout, stderr) = await Cli.RunAsync(fx, "migrate");
        Assert.True(code == 0, stderr);
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("migrated").GetBoolean());
    }

    [Fact]
    public async Task Invalid_configuration_stops_with_a_message_naming_the_setting()
    {
        var (code, _, stderr) = await Cli.RunAsync(fx, "migrate", "--Database:Provider=oracle");
        Assert.NotEqual(0, code);
        Assert.Contains("Database:Provider", stderr, StringComparison.Ordinal);

        var (code2, _, stderr2) = await Cli.RunAsync(fx, "migrate", "--Server:MaxRequestBodyBytes=1");
        Assert.NotEqual(0, code2);
        Assert.Contains("Server:MaxRequestBodyBytes", stderr2, StringComparison.Ordinal);
    }
}

public static class Cli
{
    /// <summary>Runs the built gymwire executable against the fixture's database.</summary>
    public static Task<(int Code, string Stdout, string Stderr)> RunAsync(GymwireFixture fx, params string[] args) =>
        RunAsync(fx, new Dictionary<string, string>(), args);

    /// <summary>The same, with more environment variables for the process.</summary>
    public static Task<(int Code, string Stdout, string Stderr)> RunAsync(GymwireFixture fx, IReadOnlyDictionary<string, string> environment, params string[] args) =>
        RunWithInputAsync(fx, environment, input: "", started: null, args);

    /// <summary>
    /// The same, writing <paramref name="input"/> to the process's standard input (then closing it) once
    /// <paramref name="started"/> has looked at the running process.
    /// </summary>
    public static async Task<(int Code, string Stdout, string Stderr)> RunWithInputAsync(GymwireFixture fx, IReadOnlyDictionary<string, string> environment, string input,
        Action<Process>? started, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "gymwire.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        start.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }
        start.Environment["Database__Provider"] = fx.Store == Store.Postgres ? "postgres" : "sqlite";
        start.Environment["ConnectionStrings__Gymwire"] = fx.ConnectionString;
        if (fx.Store == Store.Postgres)
        {
            start.Environment["DataProtection__Key"] = TestKeys.For(fx.ConnectionString);
        }
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        using var process = Process.Start(start)!;
        started?.Invoke(process);
        try
        {
            await process.StandardInput.WriteAsync(input);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The process ended without reading its input: its exit code and output say why.
        }
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, await stderr);
    }
}
