using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Features.Gyms;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Time.Testing;

namespace Gymwire.Tests.Infrastructure;

public enum Store
{
    Sqlite,
    Postgres,
}

/// <summary>
/// A real Gymwire, in-process, on Kestrel over loopback, against a fresh database (a SQLite file, or a
/// database in the test run's PostgreSQL cluster), with a fake clock. One per test class: tests create
/// their own gyms, so they never see each other's data.
/// </summary>
public abstract class GymwireFixture(Store store) : IAsyncLifetime
{
    private WebApplication? _app;
    private string? _sqliteDirectory;

    public Store Store { get; } = store;
    public FakeTimeProvider Clock { get; } = new(new DateTimeOffset(2026, 4, 16, 12, 0, 0, TimeSpan.Zero));
    public TestLogSink Logs { get; } = new();

    /// <summary>Holds chosen reads until several requests have made them, for tests of requests racing on one row.</summary>
    public ReadBarrier ReadBarrier { get; } = new();

    /// <summary>Changes a chosen row under each of its next reads, for tests of a request that reads and writes again after losing a race.</summary>
    public ReadRacer ReadRacer { get; } = new();
    public Uri BaseAddress { get; private set; } = null!;
    public IServiceProvider Services => _app!.Services;
    public string ConnectionString { get; private set; } = "";

    /// <summary>Configuration overrides for this fixture (as <c>--Key=value</c> arguments).</summary>
    protected virtual IEnumerable<KeyValuePair<string, string>> Settings() => [];

    public async Task InitializeAsync()
    {
        ConnectionString = await CreateDatabaseAsync();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                _app = await StartAppAsync(ConnectionString);
                return;
            }
            catch (IOException e) when (attempt < 3 && e.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException && ChooseOtherPorts())
            {
            }
        }
    }

    /// <summary>
    /// Called when a port of the fixture's own choosing was taken before the server bound it (the API's port is
    /// Kestrel's choice, which cannot be): true when the fixture has chosen another to start again with. The failed
    /// start leaves its node's row in the fixture's database, so a fixture whose tests count nodes should not opt in.
    /// </summary>
    protected virtual bool ChooseOtherPorts() => false;

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        if (Store == Store.Postgres && ConnectionString.Length > 0)
        {
            // Its pooled connections would stay open for minutes after the fixture ends; a full run's fixtures
            // together then exhaust the cluster's max_connections and fail later tests' requests.
            await (await PostgresCluster.InstanceAsync()).DropDatabaseAsync(ConnectionString);
        }
        if (_sqliteDirectory is not null)
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(_sqliteDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Stops the server and starts a new one on the same database (a restart).</summary>
    public async Task RestartAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        _app = await StartAppAsync(ConnectionString);
    }

    public string[] Arguments(string connectionString) =>
    [
        "--urls=http://127.0.0.1:0",
        $"--Database:Provider={(Store == Store.Postgres ? "postgres" : "sqlite")}",
        $"--ConnectionStrings:Gymwire={connectionString}",
        .. Store == Store.Postgres ? [$"--DataProtection:Key={TestKeys.For(connectionString)}"] : Array.Empty<string>(),
        "--Logging:LogLevel:Default=Warning",
        "--Logging:LogLevel:Gymwire=Debug",
        .. Settings().Select(s => $"--{s.Key}={s.Value}"),
    ];

    /// <summary>
    /// Another empty database on this fixture's store (PostgreSQL: on the shared test cluster; SQLite: a file in this
    /// fixture's directory, deleted with it), for tests that build a schema step by step, e.g. an upgrade.
    /// </summary>
    public async Task<string> CreateScratchDatabaseAsync()
    {
        if (Store == Store.Postgres)
        {
            return await (await PostgresCluster.InstanceAsync()).CreateDatabaseAsync();
        }
        return $"Data Source={Path.Combine(_sqliteDirectory!, "scratch-" + Guid.NewGuid().ToString("N")[..12] + ".db")}";
    }

    private async Task<string> CreateDatabaseAsync()
    {
        if (Store == Store.Postgres)
        {
            var cluster = await PostgresCluster.InstanceAsync();
            return await cluster.CreateDatabaseAsync();
        }
        _sqliteDirectory = Path.Combine(Path.GetTempPath(), "gymwire-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(_sqliteDirectory);
        return $"Data Source={Path.Combine(_sqliteDirectory, "gymwire.db")}";
    }

    private async Task<WebApplication> StartAppAsync(string connectionString)
    {
        var builder = GymwireApp.CreateBuilder(Arguments(connectionString), b =>
        {
            b.Services.AddSingleton<TimeProvider>(Clock);
            b.Logging.AddProvider(Logs);
            b.Services.AddSingleton<IInterceptor>(ReadBarrier);
            b.Services.AddSingleton<IInterceptor>(ReadRacer);
            ConfigureServices(b.Services);
        });
        var app = GymwireApp.Build(builder);
        ConfigureApp(app);
        await DatabaseSetup.MigrateAsync(app.Services);
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseAddress = new Uri(address);
        return app;
    }

    /// <summary>The handler behind <see cref="Client"/> (an HTTPS fixture trusts its test CA here).</summary>
    protected virtual HttpMessageHandler CreateHandler() => new HttpClientHandler();

    /// <summary>Extra endpoints for a fixture (e.g. one that throws, to test the 500 path).</summary>
    protected virtual void ConfigureApp(WebApplication app)
    {
    }

    /// <summary>Extra service registrations for a fixture (test doubles of external providers only).</summary>
    protected virtual void ConfigureServices(IServiceCollection services)
    {
    }

    public HttpClient Client(string? bearer = null)
    {
        var client = new HttpClient(CreateHandler()) { BaseAddress = BaseAddress };
        if (bearer is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }
        return client;
    }

    /// <summary>Creates a gym and its owner through the real provisioning code, then logs in over HTTP.</summary>
    public async Task<TestGym> CreateGymAsync(string? name = null)
    {
        var email = $"owner-{Guid.NewGuid():N}@example.com";
        const string password = "correct-horse-battery";
        await using (var scope = Services.CreateAsyncScope())
        {
            var (gym, _, error) = await scope.ServiceProvider.GetRequiredService<GymProvisioning>()
                .CreateAsync(name ?? "Test Gym", email, password, CancellationToken.None);
            Assert.True(gym is not null, error);
        }
        using var anonymous = Client();
        var login = await anonymous.PostAsJsonAsync("/api/auth/login", new { email, password });
        login.EnsureSuccessStatusCode();
        var body = await login.Content.ReadFromJsonAsync<JsonElement>();
        return new TestGym(this, body.GetProperty("gym_id").GetGuid(), email, password, body.GetProperty("token").GetString()!);
    }

    public async Task<T> WithDbAsync<T>(Func<GymwireDbContext, Task<T>> action)
    {
        await using var scope = Services.CreateAsyncScope();
        return await action(scope.ServiceProvider.GetRequiredService<GymwireDbContext>());
    }
}

public sealed record TestGym(GymwireFixture Fixture, Guid GymId, string OwnerEmail, string OwnerPassword, string OwnerToken)
{
    public HttpClient Owner() => Fixture.Client(OwnerToken);
}

public sealed class SqliteGymwire() : GymwireFixture(Store.Sqlite);

public sealed class PostgresGymwire() : GymwireFixture(Store.Postgres);

/// <summary>
/// The key-encryption key of a test database on PostgreSQL, where it must be configured (on SQLite the server makes
/// one beside the database file): derived from the connection string, so every node and restart on one database
/// gets the same key, as an operator would give them.
/// </summary>
public static class TestKeys
{
    public static string For(string connectionString) =>
        Convert.ToBase64String(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes("gymwire test key-encryption key\n" + connectionString)));
}

/// <summary>Every log line the server wrote, formatted, for asserting what must never be logged.</summary>
public sealed class TestLogSink : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    /// <summary>
    /// The lines logged at <c>Error</c> or <c>Critical</c>, from the <paramref name="start"/>th line on (a count of
    /// <see cref="Lines"/> taken earlier), by categories that start with <paramref name="category"/>.
    /// </summary>
    public List<string> ErrorsSince(int start = 0, string category = "") =>
        [.. _lines.Skip(start).Where(l => (l.StartsWith("Error ", StringComparison.Ordinal) || l.StartsWith("Critical ", StringComparison.Ordinal))
            && l.AsSpan(l.IndexOf(' ') + 1).StartsWith(category, StringComparison.Ordinal))];

    /// <summary>Asserts that <see cref="ErrorsSince"/> finds none, and shows them whole if it does.</summary>
    public void AssertNoErrorsSince(int start = 0, string category = "")
    {
        var errors = ErrorsSince(start, category);
        Assert.True(errors.Count == 0, string.Join('\n', errors));
    }

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {exception}");
    }
}
