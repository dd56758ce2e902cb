using System.Globalization;
using System.Net;
using Gymwire.Features.Gyms;
using Gymwire.Tests.Dashboard;
using Gymwire.Tests.Foundation;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Gyms;

/// <summary>The gym's time zone: chosen at set-up, edited in Settings → Gym, followed by the pages; the API stays UTC.</summary>
public abstract class GymTimeZoneTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : GymTimeZoneTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : GymTimeZoneTests(f), IClassFixture<PostgresGymwire>;

    private Task<string> ZoneAsync(Guid gymId) => fx.WithDbAsync(db => db.Gyms.Where(g => g.Id == gymId).Select(g => g.TimeZone).SingleAsync());

    [Fact]
    public async Task A_gym_is_UTC_until_the_owner_sets_a_zone_and_bad_zones_change_nothing()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        Assert.Equal("UTC", await ZoneAsync(gym.GymId));
        Assert.Contains("<dd id=\"current-time-zone\">UTC</dd>", await browser.GetPageAsync("/settings/gym"), StringComparison.Ordinal);

        foreach (var (bad, message) in new[]
                 {
                     ("Mars/Olympus_Mons", "&#x27;Mars/Olympus_Mons&#x27; is not a known time zone"),
                     ("W. Europe Standard Time", "is not a known time zone; use an IANA name"), // a Windows id: the system knows it, but it is not stored
                     ("", "Choose a time zone."),
                     ("America", "is not a known time zone"), // a folder of the zone database
                     ("../../../../etc/passwd", "is not a known time zone"),
                     ("/usr/share/zoneinfo/UTC", "is not a known time zone"),
                     (new string('A', 65), "at most 64 characters"),
                     // Names the system opens that are no place's zone: the machine's own zone, copies, a placeholder.
                     ("localtime", "is not a known time zone"),
                     ("posix/Europe/Berlin", "is not a known time zone"),
                     ("right/Europe/Berlin", "is not a known time zone"),
                     ("Factory", "is not a known time zone"),
                 })
        {
            var refused = await browser.SubmitAsync("/settings/gym", ("TimeZone", bad));
            Assert.Equal(HttpStatusCode.OK, refused.StatusCode);
            Assert.Contains(message, await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.Equal("UTC", await ZoneAsync(gym.GymId));
        }

        // A control character is refused before the page, by the server's request guard.
        Assert.Equal(HttpStatusCode.BadRequest, (await browser.SubmitAsync("/settings/gym", ("TimeZone", "Europe/Berlin\0"))).StatusCode);
        Assert.Equal("UTC", await ZoneAsync(gym.GymId));

        var saved = await browser.SubmitAsync("/settings/gym", ("TimeZone", "America/New_York"));
        Assert.Equal("/settings/gym", saved.Headers.Location!.OriginalString);
        Assert.Contains("Time zone set to America/New_York.", await (await browser.FollowAsync(saved)).Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("America/New_York", await ZoneAsync(gym.GymId));

        // Another gym keeps its own zone.
        var other = await fx.CreateGymAsync();
        Assert.Equal("UTC", await ZoneAsync(other.GymId));
    }

    [Theory]
    [InlineData("localtime")]
    [InlineData("posix/Europe/Berlin")]
    [InlineData("right/Europe/Berlin")]
    [InlineData("Factory")]
    [InlineData("posixrules")]
    public async Task Set_up_and_the_cli_refuse_a_name_that_is_no_places_zone(string bad)
    {
        Assert.Null(GymTimeZones.TryFind(bad, out var error));
        Assert.Contains("is not a known time zone", error, StringComparison.Ordinal);

        var email = $"tz-{Guid.NewGuid():N}@example.com";
        var (code, stdout, stderr) = await Cli.RunAsync(fx, "gyms", "create", "--name", "Zone Gym", "--owner-email", email,
            "--owner-password", "cli-password-123", "--time-zone", bad);
        Assert.NotEqual(0, code);
        Assert.Equal("", stdout.Trim());
        Assert.Contains($"'{bad}' is not a known time zone", stderr, StringComparison.Ordinal);
        Assert.False(await fx.WithDbAsync(db => db.Users.AnyAsync(u => u.Email == email)));
    }

    [Theory]
    [InlineData("localtime")]
    [InlineData("Factory")]
    public void A_stored_name_that_is_no_places_zone_reads_as_UTC(string stored) => Assert.Same(TimeZoneInfo.Utc, GymTimeZones.Find(stored));

    [Theory]
    [InlineData("posix/Europe/Berlin")]
    [InlineData("right/Europe/Berlin")]
    public void A_stored_copy_of_a_zone_reads_as_the_zone_it_copies(string stored) =>
        // Accepted before 2026-12-07: a gym set so keeps its days.
        Assert.Equal(TimeSpan.FromHours(2), GymTimeZones.Find(stored).GetUtcOffset(new DateTime(2026, 7, 15, 12, 0, 0, DateTimeKind.Utc)));

    [Theory]
    [InlineData("US/Eastern", -5)]
    [InlineData("Asia/Calcutta", 5.5)]
    public void The_zone_databases_aliases_stay_valid_as_gyms_may_have_stored_them(string alias, double winterOffsetHours)
    {
        // Not in the pickers' list (the database's own zones only), but a gym set to one before must keep its days.
        Assert.NotNull(GymTimeZones.TryFind(alias, out var error));
        Assert.Null(error);
        Assert.Equal(TimeSpan.FromHours(winterOffsetHours), GymTimeZones.Find(alias).GetUtcOffset(new DateTime(2026, 1, 15, 12, 0, 0, DateTimeKind.Utc)));
    }

    [Fact]
    public async Task Pages_show_times_in_the_gyms_zone_while_the_api_keeps_UTC()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var key = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Books", scopes = new[] { "read" } })).AssertStatusAsync(HttpStatusCode.Created);
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        await browser.FollowAsync(await browser.SubmitAsync("/settings/gym", ("TimeZone", "Asia/Kolkata")));

        var created = key.GetProperty("created_at").GetDateTime().ToUniversalTime();
        var kolkata = TimeZoneInfo.FindSystemTimeZoneById("Asia/Kolkata");
        var local = TimeZoneInfo.ConvertTimeFromUtc(created, kolkata).ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture);
        var keys = await browser.GetPageAsync("/settings/api-keys");
        Assert.Contains($"{local} Asia/Kolkata</time>", keys, StringComparison.Ordinal);
        Assert.Matches("<time datetime=\"[0-9T:.-]+Z\">", keys); // the machine-readable instant stays UTC

        // The API's timestamps are UTC, exactly as before.
        Assert.EndsWith("Z", key.GetProperty("created_at").GetString(), StringComparison.Ordinal);

        Assert.Contains("Times are in Asia/Kolkata", await browser.GetPageAsync("/activity"), StringComparison.Ordinal);
        Assert.Contains("<span id=\"export-zone\">Asia/Kolkata</span>", await browser.GetPageAsync("/exports"), StringComparison.Ordinal);
    }

    [Fact]
    public void Day_boundaries_follow_the_zone_on_days_the_clocks_change()
    {
        var newYork = GymTimeZones.Find("America/New_York");
        Assert.Equal(new DateTime(2026, 3, 8, 5, 0, 0, DateTimeKind.Utc), GymTimeZones.StartOfDayUtc(new DateOnly(2026, 3, 8), newYork));
        Assert.Equal(new DateTime(2026, 3, 9, 4, 0, 0, DateTimeKind.Utc), GymTimeZones.StartOfDayUtc(new DateOnly(2026, 3, 9), newYork));
        // Where midnight does not exist (Santiago moves clocks forward at midnight), the day starts at 01:00.
        var santiago = GymTimeZones.Find("America/Santiago");
        Assert.Equal(new DateTime(2026, 9, 6, 4, 0, 0, DateTimeKind.Utc), GymTimeZones.StartOfDayUtc(new DateOnly(2026, 9, 6), santiago));
        Assert.Same(TimeZoneInfo.Utc, GymTimeZones.Find("No/Such_Zone"));
        Assert.Null(GymTimeZones.TryFind("W. Europe Standard Time", out _));
        Assert.Contains("Europe/Berlin", GymTimeZones.All);
        Assert.Equal("UTC", GymTimeZones.All[0]);
    }
}
