using System.Globalization;
using System.Net;
using System.Text.Json;
using Gymwire.Features.Webhooks;
using Gymwire.Infrastructure;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;

namespace Gymwire.Tests.Foundation;

/// <summary>
/// Timestamps the API reads: one without an offset is UTC (as the API writes them and the CLI reads them), whatever the
/// server machine's time zone; one with an offset keeps it; a malformed one is a 400.
/// </summary>
public abstract class TimestampInputTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : TimestampInputTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : TimestampInputTests(f), IClassFixture<PostgresGymwire>;

    // The text read as UTC by the framework's own parser: what the converter must agree with on any machine.
    private static DateTime AsUtc(string text) =>
        DateTime.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

    private static DateTime? Since(string json) => JsonSerializer.Deserialize<RetryFailedRequest>(json, GymwireJson.Options)!.Since;

    [Theory]
    [InlineData("2027-01-31T18:00:00")]
    [InlineData("2027-01-31")]
    [InlineData("2027-01-31T18:00")]
    [InlineData("0001-01-01T00:00:00")] // before UTC+x's first instant: would not exist read as local time east of UTC
    [InlineData("9999-12-31T23:59:59")] // past UTC-x's last instant: likewise west of UTC
    public void A_time_without_an_offset_is_read_as_utc(string text)
    {
        var since = Since($$"""{"since":"{{text}}"}""");
        Assert.Equal(AsUtc(text), since);
        Assert.Equal(DateTimeKind.Utc, since!.Value.Kind);
    }

    [Fact]
    public void A_time_with_an_offset_keeps_it_and_a_malformed_one_is_refused()
    {
        Assert.Equal(new DateTime(2027, 1, 31, 16, 0, 0, DateTimeKind.Utc), Since("""{"since":"2027-01-31T18:00:00+02:00"}"""));
        Assert.Equal(new DateTime(2027, 1, 31, 18, 0, 0, DateTimeKind.Utc), Since("""{"since":"2027-01-31T18:00:00Z"}"""));
        foreach (var bad in new[] { "2027-02-30T00:00:00Z", "2027-01-31T24:00:00", "tomorrow", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00" })
        {
            Assert.Throws<JsonException>(() => Since($$"""{"since":"{{bad}}"}"""));
        }
    }

    [Fact]
    public async Task A_server_in_berlin_reads_api_times_without_an_offset_as_utc()
    {
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync("https://receiver.example.com/tz", "member.joined");
        // The child runs on the real clock (the fixture's is months behind), so times are relative to it.
        await using var node = await GymwireProcess.StartAsync(fx.Store, fx.ConnectionString, [new("TZ", "Europe/Berlin")]);
        using var anonymous = node.Client();
        var login = await (await anonymous.PostJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = gym.OwnerPassword })).AssertStatusAsync(HttpStatusCode.OK);
        using var owner = node.Client(login.GetProperty("token").GetString());

        var day = DateTime.UtcNow.Date.AddDays(60);
        var text = day.AddHours(18).ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture);
        foreach (var (expiresAt, expected) in new[]
                 {
                     (text, day.AddHours(18)),
                     (day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), day),
                     (text + "+02:00", day.AddHours(16)),
                     (text + "Z", day.AddHours(18)),
                 })
        {
            var created = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "tz", expires_at = expiresAt })).AssertStatusAsync(HttpStatusCode.Created);
            Assert.Equal(GymwireJson.FormatTimestamp(expected), created.GetProperty("expires_at").GetString());
        }
        var refused = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "tz", expires_at = "2027-02-30T00:00:00" })).AssertStatusAsync(HttpStatusCode.BadRequest);
        Assert.Contains("expires_at", refused.GetProperty("error").GetString(), StringComparison.Ordinal);

        var since = DateTime.UtcNow.Date.AddDays(-1);
        var retried = await (await owner.PostJsonAsync($"/api/gym/webhooks/{hook.Id}/retry-failed",
            new { since = since.ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture) })).AssertStatusAsync(HttpStatusCode.Accepted);
        Assert.Equal(GymwireJson.FormatTimestamp(since), retried.GetProperty("since").GetString());
    }
}
