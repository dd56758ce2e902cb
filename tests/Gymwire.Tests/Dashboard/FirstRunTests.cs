using System.Data.Common;
using System.Net;
using System.Text.RegularExpressions;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Tests.Dashboard;

/// <summary>Needs an empty database, so it has a fixture of its own and a single test.</summary>
public abstract class FirstRunTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : FirstRunTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : FirstRunTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Setup_creates_the_gym_and_owner_signs_in_and_then_is_gone()
    {
        using var browser = new DashboardClient(fx);
        Assert.Equal("/login?returnUrl=%2F", (await browser.GetAsync("/")).Headers.Location!.PathAndQuery);
        Assert.Equal("/setup", (await browser.GetAsync("/login")).Headers.Location!.OriginalString);

        var mismatch = await browser.SubmitAsync("/setup", ("Input.GymName", "First Gym"), ("Input.Email", "first@example.com"),
            ("Input.Password", "first-password-1"), ("Input.ConfirmPassword", "something-else-1"));
        Assert.Equal(HttpStatusCode.OK, mismatch.StatusCode);
        Assert.Contains("The passwords do not match.", await mismatch.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var badZone = await browser.SubmitAsync("/setup", ("Input.GymName", "First Gym"), ("Input.Email", "first@example.com"),
            ("Input.Password", "first-password-1"), ("Input.ConfirmPassword", "first-password-1"), ("Input.TimeZone", "Atlantis/Capital"));
        Assert.Equal(HttpStatusCode.OK, badZone.StatusCode);
        Assert.Contains("is not a known time zone", await badZone.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(0, await fx.WithDbAsync(db => db.Gyms.CountAsync()));

        // From loopback, but through a proxy on the same host (it names a client): that is another machine, which needs the token.
        using (var proxied = new SetupBrowser(fx.BaseAddress, "203.0.113.7"))
        {
            var refused = await proxied.SubmitAsync(("Input.GymName", "Proxied Gym"), ("Input.Email", "proxied@example.com"),
                ("Input.Password", "proxied-password-1"), ("Input.ConfirmPassword", "proxied-password-1"));
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Equal(0, await fx.WithDbAsync(db => db.Gyms.CountAsync()));
        }

        var created = await browser.SubmitAsync("/setup", ("Input.GymName", "First Gym"), ("Input.Email", "first@example.com"),
            ("Input.Password", "first-password-1"), ("Input.ConfirmPassword", "first-password-1"), ("Input.TimeZone", "Asia/Tokyo"));
        Assert.Equal(HttpStatusCode.Redirect, created.StatusCode);
        Assert.Equal("Asia/Tokyo", await fx.WithDbAsync(db => db.Gyms.Select(g => g.TimeZone).SingleAsync()));
        Assert.Equal("/settings/integrations", created.Headers.Location!.OriginalString);
        Assert.Contains("First Gym", await browser.GetPageAsync("/settings/integrations"), StringComparison.Ordinal);

        var token = DashboardClient.Token(await browser.GetPageAsync("/settings/integrations"));
        Assert.Equal("/login", (await browser.GetAsync("/setup")).Headers.Location!.OriginalString);
        var again = await browser.PostFormAsync("/setup", ("Input.GymName", "Second Gym"), ("Input.Email", "second@example.com"),
            ("Input.Password", "second-password-1"), ("Input.ConfirmPassword", "second-password-1"), ("__RequestVerificationToken", token));
        Assert.Equal("/login", again.Headers.Location!.OriginalString);
        Assert.Equal(1, await fx.WithDbAsync(db => db.Gyms.CountAsync()));
        Assert.Equal(1, await fx.WithDbAsync(db => db.Users.CountAsync()));

        // The owner created on the page logs in to the API too.
        using var api = fx.Client();
        await (await api.PostJsonAsync("/api/auth/login", new { email = "first@example.com", password = "first-password-1" })).AssertStatusAsync(HttpStatusCode.OK);
    }
}

/// <summary>
/// Set-up from another machine (through a trusted proxy on loopback that names the client): only with the one-time token
/// from the file the server wrote, which goes once the gym exists; the token is never logged.
/// </summary>
public abstract class RemoteFirstRunTests(GymwireFixture fx, string tokenFile)
{
    public sealed class Sqlite(ProxiedSqlite f) : RemoteFirstRunTests(f, f.TokenFile), IClassFixture<ProxiedSqlite>;
    public sealed class Postgres(ProxiedPostgres f) : RemoteFirstRunTests(f, f.TokenFile), IClassFixture<ProxiedPostgres>;

    private static readonly (string, string)[] Fields =
    [
        ("Input.GymName", "Remote Gym"), ("Input.Email", "remote@example.com"), ("Input.Password", "remote-password-1"),
        ("Input.ConfirmPassword", "remote-password-1"),
    ];

    [Fact]
    public async Task From_another_machine_setup_needs_the_token_from_the_owner_only_file_which_is_then_gone_and_never_logged()
    {
        Assert.True(File.Exists(tokenFile), $"no set-up token file at {tokenFile}");
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(tokenFile));
        }
        var token = File.ReadAllText(tokenFile).Trim();
        Assert.Matches("^[A-Za-z0-9_-]{22,}$", token);
        Assert.Contains(fx.Logs.Lines, l => l.Contains(tokenFile, StringComparison.Ordinal));

        using var remote = new SetupBrowser(fx.BaseAddress, "203.0.113.7");
        var page = await remote.GetPageAsync();
        Assert.Contains("name=\"Input.Token\"", page, StringComparison.Ordinal);
        Assert.Contains(tokenFile, page, StringComparison.Ordinal);

        var none = await remote.SubmitAsync(Fields);
        Assert.Equal(HttpStatusCode.Forbidden, none.StatusCode);
        Assert.Contains("The set-up token is missing or wrong", await none.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var wrong = await remote.SubmitAsync([.. Fields, ("Input.Token", token[..^1] + (token[^1] == 'A' ? "B" : "A"))]);
        Assert.Equal(HttpStatusCode.Forbidden, wrong.StatusCode);
        // The client's own X-Forwarded-For ("127.0.0.1"), with the proxy's entry after it: still the client's address.
        using var spoofing = new SetupBrowser(fx.BaseAddress, "127.0.0.1, 203.0.113.7");
        Assert.Equal(HttpStatusCode.Forbidden, (await spoofing.SubmitAsync(Fields)).StatusCode);
        Assert.Equal(0, await fx.WithDbAsync(db => db.Gyms.CountAsync()));

        var created = await remote.SubmitAsync([.. Fields, ("Input.Token", token)]);
        Assert.Equal(HttpStatusCode.Redirect, created.StatusCode);
        Assert.Equal("/settings/integrations", created.Headers.Location!.OriginalString);
        Assert.Equal("Remote Gym", await fx.WithDbAsync(db => db.Gyms.Select(g => g.Name).SingleAsync()));
        Assert.False(File.Exists(tokenFile), "the set-up token file outlived the set-up");

        using var again = new SetupBrowser(fx.BaseAddress, "203.0.113.8");
        Assert.Equal("/login", (await again.GetAsync()).Headers.Location!.OriginalString);
        Assert.Equal(1, await fx.WithDbAsync(db => db.Gyms.CountAsync()));
        Assert.DoesNotContain(fx.Logs.Lines, l => l.Contains(token, StringComparison.Ordinal));
    }
}

/// <summary>Two set-ups at once, each on a node of its own (on one database), each from loopback: one gym.</summary>
public abstract partial class ConcurrentFirstRunTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : ConcurrentFirstRunTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : ConcurrentFirstRunTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Two_set_ups_at_once_on_two_nodes_create_one_gym()
    {
        var barrier = new GymCheckBarrier();
        var first = await StartNodeAsync(barrier);
        var second = await StartNodeAsync(barrier);
        try
        {
            await RaceAsync(barrier, first, second);
        }
        finally
        {
            foreach (var node in new[] { first, second })
            {
                await node.StopAsync();
                await node.DisposeAsync();
            }
        }
        Assert.Equal(1, await fx.WithDbAsync(db => db.Gyms.CountAsync()));
        Assert.Equal(1, await fx.WithDbAsync(db => db.Users.CountAsync()));
        fx.Logs.AssertNoErrorsSince();
    }

    private static async Task RaceAsync(GymCheckBarrier barrier, WebApplication first, WebApplication second)
    {
        using var one = new SetupBrowser(Address(first), null);
        using var other = new SetupBrowser(Address(second), null);
        var oneToken = DashboardClient.Token(await one.GetPageAsync());
        var otherToken = DashboardClient.Token(await other.GetPageAsync());

        // Both requests find no gym before either creates one.
        barrier.Arm(2);
        var results = await Task.WhenAll(
            one.PostAsync(("Input.GymName", "Gym One"), ("Input.Email", "one@example.com"), ("Input.Password", "one-password-1"),
                ("Input.ConfirmPassword", "one-password-1"), ("__RequestVerificationToken", oneToken)),
            other.PostAsync(("Input.GymName", "Gym Two"), ("Input.Email", "two@example.com"), ("Input.Password", "two-password-1"),
                ("Input.ConfirmPassword", "two-password-1"), ("__RequestVerificationToken", otherToken)));

        Assert.All(results, r => Assert.Equal(HttpStatusCode.Redirect, r.StatusCode));
        Assert.Equal(new[] { "/login", "/settings/integrations" }, results.Select(r => r.Headers.Location!.OriginalString).Order());
    }

    private async Task<WebApplication> StartNodeAsync(GymCheckBarrier barrier)
    {
        var builder = GymwireApp.CreateBuilder(fx.Arguments(fx.ConnectionString), b =>
        {
            b.Services.AddSingleton<TimeProvider>(fx.Clock);
            b.Services.AddSingleton<IInterceptor>(barrier);
            b.Logging.ClearProviders();
            b.Logging.AddProvider(fx.Logs);
        });
        var app = GymwireApp.Build(builder);
        await app.StartAsync();
        return app;
    }

    private static Uri Address(WebApplication app) =>
        new(app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses.First());

    /// <summary>Once armed, holds the reads of whether a gym exists until the given number of them have run.</summary>
    private sealed partial class GymCheckBarrier : DbCommandInterceptor
    {
        private readonly Lock _lock = new();
        private int _remaining;
        private TaskCompletionSource _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Arm(int readers)
        {
            lock (_lock)
            {
                _remaining = readers;
                _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }

        public override async ValueTask<DbDataReader> ReaderExecutedAsync(
            DbCommand command, CommandExecutedEventData eventData, DbDataReader result, CancellationToken cancellationToken = default)
        {
            Task? arrived = null;
            lock (_lock)
            {
                if (_remaining > 0 && GymExists().IsMatch(command.CommandText))
                {
                    if (--_remaining == 0)
                    {
                        _arrived.TrySetResult();
                    }
                    arrived = _arrived.Task;
                }
            }
            if (arrived is not null)
            {
                // Bounded: code that checks fewer times fails the test instead of hanging it.
                await arrived.WaitAsync(TimeSpan.FromSeconds(20), cancellationToken);
            }
            return result;
        }

        [GeneratedRegex("EXISTS \\(\\s*SELECT 1\\s+FROM \"?gyms\"?", RegexOptions.IgnoreCase)]
        private static partial Regex GymExists();
    }
}

/// <summary>A fixture whose requests come through a trusted proxy on loopback, with the set-up token file where given.</summary>
public abstract class ProxiedGymwire(Store store) : GymwireFixture(store), IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "gymwire-setup-" + Guid.NewGuid().ToString("N")[..12]);

    /// <summary>SQLite: the default, beside the database file. PostgreSQL: configured, in a directory of this fixture's.</summary>
    public string TokenFile => Store == Store.Postgres
        ? Path.Combine(_directory, "gymwire.setup-token")
        : Path.Combine(Path.GetDirectoryName(new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(ConnectionString).DataSource)!, "gymwire.setup-token");

    protected override IEnumerable<KeyValuePair<string, string>> Settings()
    {
        List<KeyValuePair<string, string>> settings =
            [new("ForwardedHeaders:TrustedProxies:0", "127.0.0.1"), new("ForwardedHeaders:TrustedProxies:1", "::1")];
        if (Store == Store.Postgres)
        {
            Directory.CreateDirectory(_directory);
            settings.Add(new("Setup:TokenFile", TokenFile));
        }
        return settings;
    }

    Task IAsyncLifetime.InitializeAsync() => InitializeAsync();

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}

public sealed class ProxiedSqlite() : ProxiedGymwire(Store.Sqlite);

public sealed class ProxiedPostgres() : ProxiedGymwire(Store.Postgres);

/// <summary>
/// The set-up page as a browser sees it (cookies, no redirects followed), sending X-Forwarded-For as a proxy in front of
/// the server would (null: none, a request straight to loopback).
/// </summary>
internal sealed class SetupBrowser : IDisposable
{
    private readonly HttpClient _http;

    public SetupBrowser(Uri server, string? forwardedFor)
    {
        _http = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false, UseCookies = true })
        {
            BaseAddress = server,
        };
        if (forwardedFor is not null)
        {
            _http.DefaultRequestHeaders.Add("X-Forwarded-For", forwardedFor);
        }
    }

    public Task<HttpResponseMessage> GetAsync() => _http.GetAsync("/setup");

    public async Task<string> GetPageAsync()
    {
        var response = await GetAsync();
        var html = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET /setup: {(int)response.StatusCode} {response.Headers.Location} {html}");
        return html;
    }

    public Task<HttpResponseMessage> PostAsync(params (string Name, string Value)[] fields) =>
        _http.PostAsync("/setup", new FormUrlEncodedContent(fields.Select(f => KeyValuePair.Create(f.Name, f.Value))));

    /// <summary>Loads the page for its antiforgery token (and cookie), then posts the fields with it.</summary>
    public async Task<HttpResponseMessage> SubmitAsync(params (string Name, string Value)[] fields) =>
        await PostAsync([.. fields, ("__RequestVerificationToken", DashboardClient.Token(await GetPageAsync()))]);

    public void Dispose() => _http.Dispose();
}
