using System.Net;
using Gymwire.Features.Email;
using Gymwire.Features.Gyms;
using Gymwire.Tests.Dashboard;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Email;

/// <summary>
/// An owner address .NET accepts but MimeKit cannot parse (a dot before the @): refused for new owners, and where one
/// is already stored, a failed email rather than an exception that escapes (and, from the reset mailer, stops the server).
/// </summary>
public abstract class OwnerAddressTests(SmtpFixture fx)
{
    public sealed class Sqlite(SqliteSmtp f) : OwnerAddressTests(f), IClassFixture<SqliteSmtp>;
    public sealed class Postgres(PostgresSmtp f) : OwnerAddressTests(f), IClassFixture<PostgresSmtp>;

    /// <summary>Gives the gym's owner an address MimeKit cannot parse, as a row written before the stricter check would hold.</summary>
    private async Task<string> UnparsableOwnerAsync(TestGym gym)
    {
        var email = $"john{Guid.NewGuid():N}.@example.com";
        await fx.WithDbAsync(db => db.Users.Where(u => u.GymId == gym.GymId).ExecuteUpdateAsync(u => u
            .SetProperty(x => x.Email, email).SetProperty(x => x.NormalizedEmail, email.ToUpperInvariant())
            .SetProperty(x => x.UserName, email).SetProperty(x => x.NormalizedUserName, email.ToUpperInvariant())));
        return email;
    }

    [Fact]
    public async Task A_notification_to_an_owner_address_mimekit_cannot_parse_is_a_recorded_failure()
    {
        var gym = await fx.CreateGymAsync();
        var email = await UnparsableOwnerAsync(gym);
        await using (var scope = fx.Services.CreateAsyncScope())
        {
            Assert.False(await scope.ServiceProvider.GetRequiredService<OwnerNotifications>().NotifyAsync(gym.GymId, "Hello", "Body", CancellationToken.None));
        }
        var delivery = await fx.WithDbAsync(db => db.EmailDeliveries.SingleAsync(d => d.GymId == gym.GymId));
        Assert.Equal("failed", delivery.Status);
        Assert.Contains(email, delivery.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_reset_link_for_an_owner_address_mimekit_cannot_parse_leaves_the_server_running()
    {
        var (broken, other) = (await fx.CreateGymAsync(), await fx.CreateGymAsync());
        var email = await UnparsableOwnerAsync(broken);
        using (var browser = new DashboardClient(fx))
        {
            Assert.Equal(HttpStatusCode.OK, (await browser.SubmitAsync("/forgot-password", ("Email", email))).StatusCode);
        }
        // The mailer sends one link after another: the next one arriving means it got past the broken address.
        var mail = fx.Smtp.NextAsync(m => m.To.Mailboxes.Any(a => a.Address == other.OwnerEmail));
        using (var browser = new DashboardClient(fx))
        {
            Assert.Equal(HttpStatusCode.OK, (await browser.SubmitAsync("/forgot-password", ("Email", other.OwnerEmail))).StatusCode);
        }
        await mail.WaitAsync(TimeSpan.FromSeconds(30));
        using var client = fx.Client();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/login")).StatusCode);
    }

    [Fact]
    public async Task A_gym_with_an_owner_address_mimekit_cannot_parse_is_refused()
    {
        await using var scope = fx.Services.CreateAsyncScope();
        var (created, status, error) = await scope.ServiceProvider.GetRequiredService<GymProvisioning>()
            .CreateAsync("Dot gym", "john.@example.com", "dot-gym-password-1", CancellationToken.None);
        Assert.Equal(((ProvisionedGym?)null, 400), (created, status));
        Assert.Contains("'owner_email' must be a valid email address", error, StringComparison.Ordinal);
        Assert.False(await fx.WithDbAsync(db => db.Gyms.AnyAsync(g => g.Name == "Dot gym")));
    }
}
