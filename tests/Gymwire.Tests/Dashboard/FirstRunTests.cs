using System.Net;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

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
