using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Data.Common;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Gymwire.Features.ApiKeys;
using Gymwire.Features.Cluster;
using Gymwire.Features.Demo;

namespace Gymwire.Infrastructure;

/// <summary>
/// The <c>gymwire</c> command line: <c>serve</c> (the default) and the admin commands. Admin commands
/// print JSON on stdout, logs and errors on stderr, and exit non-zero on failure. Every command reads the
/// same configuration as the server (appsettings.json, environment, <c>--Section:Key=value</c>).
/// </summary>
public static class GymwireCli
{
    public static async Task<int> RunAsync(string[] args)
    {
        var root = new RootCommand("Gymwire: the integration server for gyms (API keys, Zapier triggers and actions, signed webhooks).");
        var serve = new Command("serve", "Run the API, dashboard and workers (the default). Honours --urls.");
        serve.SetAction((_, ct) => ServeAsync(args, ct));
        root.SetAction((_, ct) => ServeAsync(args, ct));

        var migrate = new Command("migrate", "Apply database migrations and exit.");
        // AdminAsync migrates before every command (with Database:MigrateOnStart, the default); this one always does.
        migrate.SetAction((_, ct) => AdminAsync(args, (services, _) =>
        {
            var provider = services.GetRequiredService<IOptions<DatabaseOptions>>().Value.ProviderKind;
            return Task.FromResult(Ok(new { migrated = true, provider = provider.ToString().ToLowerInvariant() }));
        }, ct, alwaysMigrate: true));

        var gyms = new Command("gyms", "Manage gyms.");
        var name = new Option<string>("--name") { Description = "The gym's name.", Required = true };
        var email = new Option<string>("--owner-email") { Description = "The owner's email (their login).", Required = true };
        var password = new Option<string?>("--owner-password")
        {
            Description = "The owner's password (at least 10 characters). Visible to every local user in ps: prefer --owner-password-stdin.",
        };
        var passwordStdin = new Option<bool>("--owner-password-stdin")
        {
            Description = "Read the owner's password from standard input: one line, or typed twice at a terminal (the default on a terminal).",
        };
        var timeZone = new Option<string?>("--time-zone") { Description = "The gym's time zone, an IANA name such as Europe/Berlin (default UTC)." };
        var create = new Command("create", "Create a gym and its owner account.") { name, email, password, passwordStdin, timeZone };
        create.SetAction(async (parse, ct) =>
        {
            var (ownerPassword, passwordError) = PasswordInput.From(parse.GetValue(password), parse.GetValue(passwordStdin), "--owner-password", required: true);
            if (passwordError is not null)
            {
                return await RefuseAsync(passwordError);
            }
            return await AdminAsync(args, async (services, ct2) =>
            {
                var (gym, _, error) = await services.GetRequiredService<GymProvisioning>()
                    .CreateAsync(parse.GetValue(name), parse.GetValue(email), ownerPassword!, parse.GetValue(timeZone), ct2);
                return gym is null ? Fail(error!) : Ok(new { gym_id = gym.GymId, owner_id = gym.OwnerId, owner_email = gym.OwnerEmail });
            }, ct);
        });
        gyms.Subcommands.Add(create);

        var alongside = new Option<bool>("--alongside-other-gyms")
        {
            Description = "Add the demo gym to a database that holds other gyms too (its owner's password is published: never on a live server).",
        };
        var demo = new Command("demo", "Create (once) a demo gym with a month of data; prints its id and the owner's login.") { alongside };
        demo.SetAction((parse, ct) => AdminAsync(args, async (services, ct2) =>
        {
            var seeder = services.GetRequiredService<DemoSeeder>();
            // The demo owner's password is in the README: on a live database it would be a way in for anyone.
            if (!parse.GetValue(alongside) && await seeder.OtherGymsAsync(ct2) is > 0 and var others)
            {
                return Fail($"this database holds {others} gym(s) besides the demo's, and the demo owner's password is public: " +
                    "run demo on a database of its own (--ConnectionStrings:Gymwire=...), or give --alongside-other-gyms on a test server");
            }
            var seeded = await seeder.SeedAsync(ct2);
            return Ok(new
            {
                gym_id = seeded.GymId, gym_name = seeded.GymName, created = seeded.Created,
                login = new { email = seeded.OwnerEmail, password = seeded.OwnerPassword },
            });
        }, ct));

        foreach (var command in new[] { serve, migrate, create, demo })
        {
            command.TreatUnmatchedTokensAsErrors = false; // configuration overrides such as --urls or --Database:Provider=postgres
        }
        root.TreatUnmatchedTokensAsErrors = false;
        root.Subcommands.Add(serve);
        root.Subcommands.Add(migrate);
        root.Subcommands.Add(gyms);
        root.Subcommands.Add(demo);
        root.Subcommands.Add(ApiKeySetup.CliCommand(args));
        root.Subcommands.Add(PasswordResets.CliCommand(args));
        foreach (var command in DatabaseBackup.CliCommands(args))
        {
            root.Subcommands.Add(command);
        }
        root.Subcommands.Add(ClusterSetup.CliCommand(args));
        root.Subcommands.Add(KeyRingSetup.CliCommand(args));

        // No response files: an argument starting with @ (a password, a gym's name) is the argument itself.
        var parsed = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (UnknownToken(parsed.UnmatchedTokens) is { } unknown)
        {
            await Console.Error.WriteLineAsync($"error: unknown command or option '{unknown}' (see gymwire --help; settings are given as --Section:Key=value)");
            return 1;
        }
        // A value that does not parse, a required option or command left out: one error line, as a command's own
        // refusals are, instead of the parser's message followed by the whole help.
        if (parsed.Action is ParseErrorAction && parsed.Errors.Count > 0)
        {
            return await RefuseAsync($"{parsed.Errors[0].Message.TrimEnd('.')} (see {CommandPath(parsed.CommandResult)} --help)");
        }
        if (parsed.Action is HelpAction)
        {
            using var help = new StringWriter();
            var code = await parsed.InvokeAsync(new InvocationConfiguration { Output = help });
            await Console.Out.WriteAsync(HelpText(help.ToString()));
            return code;
        }
        // Without a termination timeout the host's own SIGTERM handling runs: a clean stop that lets requests and
        // webhook attempts finish, instead of the parser ending the process 2 s after the signal.
        return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
    }

    /// <summary>
    /// The parser's help in Gymwire's words where it speaks of the <c>--Section:Key=value</c> settings, which every command
    /// lets through as unmatched tokens: the parser calls them "arguments passed to the application that is being run",
    /// with an unbalanced bracket in its usage line, and its help layout cannot be changed from outside.
    /// </summary>
    private static string HelpText(string help) => help
        .Replace("[[--] <additional arguments>...]]", "[--Section:Key=value ...]", StringComparison.Ordinal)
        .Replace("Additional Arguments:" + Environment.NewLine + "  Arguments passed to the application that is being run.",
            "Settings:" + Environment.NewLine + "  --Section:Key=value  Any setting, as in appsettings.json; overrides the file and the environment (docs/configuration.md).",
            StringComparison.Ordinal);

    private static string CommandPath(System.CommandLine.Parsing.CommandResult result) =>
        result.Parent is System.CommandLine.Parsing.CommandResult parent ? $"{CommandPath(parent)} {result.Command.Name}" : "gymwire";

    /// <summary>An option holding an id (a UUID), refused in words when its value is not one.</summary>
    public static Option<Guid> IdOption(string name, string description) => new(name)
    {
        Description = description,
        Required = true,
        CustomParser = result => Parse(result, (string value, out Guid id) => Guid.TryParse(value, out id),
            $"{name} takes an id such as 3f2b8c1e-5d7a-4e9b-8c6d-1a2b3c4d5e6f"),
    };

    /// <summary>An option holding a time (ISO-8601), refused in words when its value is not one.</summary>
    public static Option<DateTime?> TimeOption(string name, string description) => new(name)
    {
        Description = description,
        CustomParser = result => Parse(result, (string value, out DateTime? time) =>
        {
            var parsed = DateTime.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.None, out var t);
            time = t;
            return parsed;
        }, $"{name} takes an ISO-8601 time such as 2027-01-31T18:00:00Z"),
    };

    private delegate bool TryParse<T>(string value, out T parsed);

    private static T? Parse<T>(ArgumentResult result, TryParse<T> tryParse, string expected)
    {
        // No value: the parser's own check of the option's arity reports it.
        if (result.Tokens.Count == 0)
        {
            return default;
        }
        var value = result.Tokens[^1].Value;
        if (tryParse(value, out var parsed))
        {
            return parsed;
        }
        result.AddError($"{expected}, not '{value}'");
        return default;
    }

    // The host's own command-line settings (WebApplicationOptions and Kestrel's), besides --Section:Key overrides.
    private static readonly HashSet<string> HostSettings = new(StringComparer.OrdinalIgnoreCase)
    {
        "urls", "http_ports", "https_ports", "environment", "contentRoot", "applicationName", "webroot", "hostingStartupAssemblies",
    };

    /// <summary>
    /// The first token neither a command nor an option knows and that is no configuration override (<c>--Section:Key=value</c>,
    /// <c>--Section:Key value</c>, or a host setting such as <c>--urls</c>): a misspelt option would otherwise be ignored
    /// (an API key created without its expiry) and a misspelt command would start the server.
    /// </summary>
    internal static string? UnknownToken(IReadOnlyList<string> unmatched)
    {
        for (var i = 0; i < unmatched.Count; i++)
        {
            var token = unmatched[i];
            if (!token.StartsWith("--", StringComparison.Ordinal) || token.Length == 2)
            {
                return token;
            }
            var equals = token.IndexOf('=', StringComparison.Ordinal);
            var key = equals < 0 ? token[2..] : token[2..equals];
            if (!key.Contains(':', StringComparison.Ordinal) && !HostSettings.Contains(key))
            {
                return token;
            }
            if (equals < 0 && i + 1 < unmatched.Count && !unmatched[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                i++; // the override's value
            }
        }
        return null;
    }

    private static async Task<int> ServeAsync(string[] args, CancellationToken ct)
    {
        var starting = new StrongBox<bool>(true);
        var app = GymwireApp.Build(GymwireApp.CreateBuilder(args, builder =>
            // A failure to start is the one error line below; the host's own log of it would repeat it with a stack trace.
            // Only while starting: afterwards the host's errors (a background service that fails) are logged as ever.
            builder.Logging.Services.Configure<LoggerFilterOptions>(o => o.Rules.Add(new LoggerFilterRule(null, HostCategory, LogLevel.Information,
                (_, _, level) => !(starting.Value && level >= LogLevel.Error))))));
        // What the host would check while starting (settings, the key ring) is checked first, so that a refusal is the
        // same one error line and exit code as the admin commands give, not the host's failure logged with a stack trace.
        try
        {
            app.Services.GetService<IStartupValidator>()?.Validate();
            await PrepareDatabaseAsync(app.Services, migrate: false, ct);
            await KeyRingSetup.PrepareAsync(app.Services, ct);
        }
        catch (Exception e) when (OperatorError(e) is { } error)
        {
            await Console.Error.WriteLineAsync($"error: {error}");
            return 2;
        }
        try
        {
            await app.StartAsync();
        }
        catch (Exception e) when (ListenFailure(e, app.Configuration) is { } reason)
        {
            await Console.Error.WriteLineAsync($"error: {reason}");
            return 2;
        }
        finally
        {
            starting.Value = false;
        }
        await app.WaitForShutdownAsync();
        await app.DisposeAsync();
        return 0;
    }

    private const string HostCategory = "Microsoft.Extensions.Hosting.Internal.Host";

    /// <summary>
    /// Why Kestrel could not start listening, in one line: an address in use, or a certificate it cannot load (a missing
    /// file, a wrong password, which its message never repeats). Null for anything else, which keeps its stack trace.
    /// </summary>
    private static string? ListenFailure(Exception e, IConfiguration configuration) => e switch
    {
        CryptographicException or FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException =>
            $"cannot load the HTTPS certificate ({CertificateSettings(configuration)}): {e.Message}",
        IOException => $"cannot listen: {e.Message}",
        _ => null,
    };

    /// <summary>The certificate files Kestrel's settings name, such as <c>Kestrel:Endpoints:Https:Certificate:Path=/etc/gymwire/cert.pem</c>.</summary>
    private static string CertificateSettings(IConfiguration configuration)
    {
        var files = configuration.GetSection("Kestrel").AsEnumerable()
            .Where(s => !string.IsNullOrEmpty(s.Value) && (s.Key.EndsWith(":Path", StringComparison.OrdinalIgnoreCase) || s.Key.EndsWith(":KeyPath", StringComparison.OrdinalIgnoreCase)))
            .OrderBy(s => s.Key, StringComparer.Ordinal)
            .Select(s => $"{s.Key}={s.Value}")
            .ToList();
        return files.Count == 0 ? "Kestrel's settings" : string.Join(", ", files);
    }

    /// <summary>
    /// Migrates the database when Database:MigrateOnStart is on (or <paramref name="migrate"/> asks it); otherwise
    /// refuses a database that lacks a migration of this version, whose queries would fail at their first use.
    /// </summary>
    private static async Task PrepareDatabaseAsync(IServiceProvider services, bool migrate, CancellationToken ct)
    {
        if (migrate || services.GetRequiredService<IOptions<DatabaseOptions>>().Value.MigrateOnStart)
        {
            await DatabaseSetup.MigrateAsync(services, ct);
            return;
        }
        var pending = await DatabaseSetup.PendingMigrationsAsync(services, ct);
        if (pending.Count > 0)
        {
            throw new DatabaseBehindException(
                $"the database lacks {pending.Count} migration(s) of this version of Gymwire (the latest: {pending[^1]}), and Database:MigrateOnStart is false: run `gymwire migrate` first");
        }
    }

    public readonly record struct CommandResult(int ExitCode, object? Output, string? Error);

    public static CommandResult Ok(object output) => new(0, output, null);

    public static CommandResult Fail(string error) => new(1, null, error);

    /// <summary>A command refused before it opens the database: its <c>error:</c> line, exit code 1.</summary>
    public static async Task<int> RefuseAsync(string error)
    {
        await Console.Error.WriteLineAsync($"error: {error}");
        return 1;
    }

    /// <summary>
    /// Runs an admin command against the configured database (migrated first, as <c>serve</c> does it) and prints its JSON.
    /// </summary>
    public static async Task<int> AdminAsync(string[] args, Func<IServiceProvider, CancellationToken, Task<CommandResult>> action, CancellationToken ct,
        bool alwaysMigrate = false)
    {
        try
        {
            var builder = GymwireApp.CreateBuilder(args);
            builder.Logging.ClearProviders();
            builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
            // Warnings and errors only, whatever Logging:LogLevel says (appsettings.json's Information is the server's):
            // configured levels outrank a minimum level, so the configured rules go, and these are the only ones.
            builder.Logging.Services.Configure<LoggerFilterOptions>(o => o.Rules.Clear());
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
            // Except the notice that the key file was just made: the operator must back it up.
            builder.Logging.AddFilter(KeyRingSetup.KeyFileCreatedCategory, LogLevel.Information);
            // A failed connection or statement ends the command with its own error line; EF Core's log of it would repeat it with a stack trace.
            builder.Logging.AddFilter("Microsoft.EntityFrameworkCore.Database", LogLevel.Critical);
            await using var app = builder.Build();
            app.Services.GetService<IStartupValidator>()?.Validate();
            await PrepareDatabaseAsync(app.Services, alwaysMigrate, ct);
            await KeyRingSetup.PrepareAsync(app.Services, ct);
            await using var scope = app.Services.CreateAsyncScope();
            var result = await action(scope.ServiceProvider, ct);
            if (result.Error is not null)
            {
                await Console.Error.WriteLineAsync($"error: {result.Error}");
            }
            else
            {
                await Console.Out.WriteLineAsync(JsonSerializer.Serialize(result.Output, GymwireJson.Options));
            }
            return result.ExitCode;
        }
        catch (Exception e) when (OperatorError(e) is { } error)
        {
            await Console.Error.WriteLineAsync($"error: {error}");
            return 2;
        }
    }

    /// <summary>
    /// The one line for a failure the operator fixes (a setting, the key ring, the database's state, or the database or a
    /// file it needs out of reach), as every command and <c>serve</c> print it; null for a defect, which keeps its stack trace.
    /// </summary>
    private static string? OperatorError(Exception e) => e switch
    {
        OptionsValidationException invalid => $"invalid configuration: {string.Join("; ", invalid.Failures)}",
        KeyRingException or DatabaseBehindException or DatabaseMigrationException => e.Message,
        DbException or IOException or UnauthorizedAccessException => $"cannot open the database: {e.Message}",
        _ => null,
    };
}

/// <summary>The database lacks migrations of this version and may not be migrated here (Database:MigrateOnStart is false).</summary>
public sealed class DatabaseBehindException(string message) : Exception(message);
