using System.Data.Common;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Features.Gyms;
using Gymwire.Tests.Dashboard;
using Gymwire.Tests.Infrastructure;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Gymwire.Tests.Gyms;

/// <summary>
/// A password reset ends every session of the owner, including one whose sign-in checked the old password just before
/// the reset and saved its row just after it: the session carries the owner's security stamp, which the reset rotated.
/// </summary>
public abstract class SessionStampTests(SessionInsertHoldGymwire fx)
{
    public sealed class Sqlite(SqliteSessionInsertHold f) : SessionStampTests(f), IClassFixture<SqliteSessionInsertHold>;
    public sealed class Postgres(PostgresSessionInsertHold f) : SessionStampTests(f), IClassFixture<PostgresSessionInsertHold>;

    private const string NewPassword = "a-brand-new-password";

    private async Task ResetByOperatorAsync(string email)
    {
        await using var scope = fx.Services.CreateAsyncScope();
        var owner = await scope.ServiceProvider.GetRequiredService<UserManager<Owner>>().FindByEmailAsync(email);
        Assert.NotNull(owner);
        Assert.Null(await scope.ServiceProvider.GetRequiredService<PasswordResets>().SetByOperatorAsync(owner, NewPassword, CancellationToken.None));
    }

    [Fact]
    public async Task An_api_login_whose_session_is_saved_after_a_reset_gets_a_token_that_is_refused()
    {
        var gym = await fx.CreateGymAsync();
        var held = fx.Hold.Arm();
        using var api = fx.Client();
        var login = api.PostAsJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = gym.OwnerPassword });
        // The login has checked the old password and is about to insert its session.
        await held.WaitAsync(TimeSpan.FromSeconds(30));
        await ResetByOperatorAsync(gym.OwnerEmail);
        fx.Hold.Release();

        var response = await login;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var token = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString()!;
        using var late = fx.Client(token);
        await (await late.GetAsync("/api/me")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        // The sessions from before the reset ended too.
        using var before = gym.Owner();
        await (await before.GetAsync("/api/me")).AssertErrorAsync(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task A_dashboard_login_whose_session_is_saved_after_a_reset_gets_a_cookie_that_is_refused()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        var token = DashboardClient.Token(await browser.GetPageAsync("/login"));
        var held = fx.Hold.Arm();
        var login = browser.PostFormAsync("/login",
            ("Input.Email", gym.OwnerEmail), ("Input.Password", gym.OwnerPassword), ("__RequestVerificationToken", token));
        await held.WaitAsync(TimeSpan.FromSeconds(30));
        await ResetByOperatorAsync(gym.OwnerEmail);
        fx.Hold.Release();

        var response = await login;
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.DoesNotContain("/login", response.Headers.Location!.OriginalString, StringComparison.Ordinal);
        var page = await browser.GetAsync("/settings/integrations");
        Assert.Equal(HttpStatusCode.Redirect, page.StatusCode);
        Assert.StartsWith("/login", new Uri(fx.BaseAddress, page.Headers.Location!).PathAndQuery, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_login_whose_session_is_saved_around_a_password_change_gets_a_token_that_is_refused()
    {
        var gym = await fx.CreateGymAsync();
        using var current = gym.Owner();
        var held = fx.Hold.Arm();
        using var api = fx.Client();
        var login = api.PostAsJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = gym.OwnerPassword });
        await held.WaitAsync(TimeSpan.FromSeconds(30));
        var change = current.PostJsonAsync("/api/auth/password", new { current_password = gym.OwnerPassword, new_password = NewPassword });
        if (fx.Store == Store.Postgres)
        {
            // The change commits while the login's session is still unsaved.
            Assert.Equal(HttpStatusCode.NoContent, (await change).StatusCode);
        }
        // On SQLite the held insert keeps the one write turn, so the change commits after it: the other order.
        fx.Hold.Release();

        var response = await login;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await change).StatusCode);
        var token = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString()!;
        using var late = fx.Client(token);
        await (await late.GetAsync("/api/me")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        // The session that made the change stays.
        await (await current.GetAsync("/api/me")).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_session_from_before_the_upgrade_takes_its_owners_stamp_and_stays_valid()
    {
        var builder = GymwireApp.CreateBuilder(fx.Arguments(await fx.CreateScratchDatabaseAsync()), b => b.Logging.ClearProviders());
        await using var app = GymwireApp.Build(builder);
        var now = new DateTime(2026, 4, 16, 12, 0, 0, DateTimeKind.Utc);
        var sessionId = Guid.CreateVersion7(now);
        const string email = "before-upgrade@example.com";
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            await db.GetService<IMigrator>().MigrateAsync("ReportClaimLease");
            var (gym, _, error) = await scope.ServiceProvider.GetRequiredService<GymProvisioning>()
                .CreateAsync("Old Gym", email, "correct-horse-battery", CancellationToken.None);
            Assert.True(gym is not null, error);
            // The previous schema's row, without a stamp. SQLite keeps ids as upper-case text.
            object id = fx.Store == Store.Sqlite ? sessionId.ToString().ToUpperInvariant() : sessionId;
            byte[] hash = [1, 2, 3];
            var expires = now.AddDays(30);
            await db.Database.ExecuteSqlAsync($"""
                INSERT INTO owner_sessions (id, owner_id, gym_id, token_hash, created_at, expires_at)
                SELECT {id}, o.id, o.gym_id, {hash}, {now}, {expires} FROM owners o WHERE o.normalized_email = {email.ToUpperInvariant()}
                """);
        }

        await DatabaseSetup.MigrateAsync(app.Services);

        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            var owner = await db.Users.AsNoTracking().SingleAsync(u => u.NormalizedEmail == email.ToUpperInvariant());
            var session = await db.OwnerSessions.AsNoTracking().SingleAsync(s => s.Id == sessionId);
            Assert.False(string.IsNullOrEmpty(owner.SecurityStamp));
            Assert.Equal(owner.SecurityStamp, session.SecurityStamp);
            Assert.True(await OwnerSessions.IsActiveAsync(db, sessionId, owner.Id, now, CancellationToken.None));
        }
    }
}

/// <summary>A Gymwire whose next <c>INSERT INTO owner_sessions</c> can be held until the test lets it go.</summary>
public abstract class SessionInsertHoldGymwire(Store store) : GymwireFixture(store)
{
    public SessionInsertHold Hold { get; } = new();

    protected override void ConfigureServices(IServiceCollection services) => services.AddSingleton<IInterceptor>(Hold);
}

public sealed class SqliteSessionInsertHold() : SessionInsertHoldGymwire(Store.Sqlite);

public sealed class PostgresSessionInsertHold() : SessionInsertHoldGymwire(Store.Postgres);

/// <summary>
/// Once armed, stops the next <c>INSERT INTO owner_sessions</c> before it runs, tells the test it arrived, and lets it run
/// when released: the interleaving where a password change lands between a sign-in's password check and its session's save.
/// </summary>
public sealed class SessionInsertHold : DbCommandInterceptor
{
    private readonly Lock _lock = new();
    private TaskCompletionSource? _arrived;
    private TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Arms the hold; the task completes when an insert is being held.</summary>
    public Task Arm()
    {
        lock (_lock)
        {
            _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
            _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
            return _arrived.Task;
        }
    }

    public void Release() => _release.TrySetResult();

    public override async ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
    {
        await HoldAsync(command, cancellationToken);
        return result;
    }

    public override async ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        await HoldAsync(command, cancellationToken);
        return result;
    }

    private async Task HoldAsync(DbCommand command, CancellationToken ct)
    {
        Task release;
        lock (_lock)
        {
            if (_arrived is null || !command.CommandText.Contains("INSERT INTO", StringComparison.OrdinalIgnoreCase)
                || !command.CommandText.Contains("owner_sessions", StringComparison.Ordinal))
            {
                return;
            }
            _arrived.TrySetResult();
            _arrived = null;
            release = _release.Task;
        }
        // Bounded, so a test that never releases fails instead of hanging.
        await release.WaitAsync(TimeSpan.FromSeconds(30), ct);
    }
}
