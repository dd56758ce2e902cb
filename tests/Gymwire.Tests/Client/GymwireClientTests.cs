using System.Net;
using Gymwire.Client;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Client;

/// <summary>The typed client against a running Gymwire: every trigger and action, and errors as exceptions.</summary>
public abstract class GymwireClientTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : GymwireClientTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : GymwireClientTests(f), IClassFixture<PostgresGymwire>;

    private async Task<(TestGym Gym, GymwireClient Owner, HttpClient Http)> SetUpAsync()
    {
        var gym = await fx.CreateGymAsync("Client Gym");
        var http = fx.Client();
        return (gym, new GymwireClient(http, gym.OwnerToken), http);
    }

    [Fact]
    public async Task Runs_every_trigger_and_action()
    {
        var (gym, owner, http) = await SetUpAsync();
        await (await gym.Owner().PostJsonAsync("/api/gym/members", new { name = "Ana", user_id = "user_client" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await gym.Owner().PostJsonAsync("/api/gym/payments", new { user_id = "user_client", amount_cents = 9900 })).AssertStatusAsync(HttpStatusCode.Created);
        await (await gym.Owner().PostJsonAsync("/api/gym/sessions", new { user_id = "user_client", session_type = "gi", date = "2026-04-16", duration_mins = 60 })).AssertStatusAsync(HttpStatusCode.Created);

        var created = await owner.CreateApiKeyAsync(new CreateApiKey("client", ["read", "write"]));
        Assert.StartsWith("cs_", created.Key, StringComparison.Ordinal);
        var client = new GymwireClient(http, created.Key);

        var me = await client.GetMeAsync();
        Assert.Equal(gym.GymId, me.GymId);
        Assert.Equal("client", me.KeyName);

        var lead = await client.CreateLeadAsync(new CreateLead("Jane", "Doe", "jane@example.com"), idempotencyKey: "lead-1");
        Assert.Equal("zapier", lead.Source);
        Assert.Equal(lead.Id, (await client.CreateLeadAsync(new CreateLead("Jane", "Doe", "jane@example.com"), idempotencyKey: "lead-1")).Id);
        var sms = await client.SendSmsAsync(new SendSms("+15551234567", "Welcome to our gym!"));
        Assert.Equal("queued", sms.Status);
        var checkin = await client.LogAttendanceAsync(new LogAttendance("user_client"));
        Assert.Equal("approved", checkin.Status);

        var members = await client.GetNewMembersAsync();
        Assert.Equal("user_client", Assert.Single(members).UserId);
        Assert.Equal(9900, Assert.Single(await client.GetNewPaymentsAsync()).AmountCents);
        Assert.Equal(new DateOnly(2026, 4, 16), Assert.Single(await client.GetNewSessionsAsync()).Date);
        // new_checkin holds kiosk check-ins (docs/polling.md); log_attendance records an API check-in.
        Assert.Empty(await client.GetNewCheckinsAsync());

        Assert.Contains(await owner.ListApiKeysAsync(), k => k.Id == created.Id && k.IsActive);
        var revoked = await owner.RevokeApiKeyAsync(created.Id);
        Assert.False(revoked.IsActive);
        var error = await Assert.ThrowsAsync<GymwireApiException>(() => client.GetNewMembersAsync());
        Assert.Equal(HttpStatusCode.Unauthorized, error.StatusCode);
        Assert.Contains("revoked", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Errors_surface_as_exceptions_with_status_message_and_retry_after()
    {
        var (gym, owner, http) = await SetUpAsync();
        var readOnly = new GymwireClient(http, (await owner.CreateApiKeyAsync(new CreateApiKey("ro"))).Key);

        var forbidden = await Assert.ThrowsAsync<GymwireApiException>(() => readOnly.CreateLeadAsync(new CreateLead("X")));
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        Assert.Contains("'write'", forbidden.Message, StringComparison.Ordinal);

        var invalid = await Assert.ThrowsAsync<GymwireApiException>(() => owner.SendSmsAsync(new SendSms("555", "hi")));
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Contains("E.164", invalid.Message, StringComparison.Ordinal);

        var missing = await Assert.ThrowsAsync<GymwireApiException>(() => owner.LogAttendanceAsync(new LogAttendance("user_nobody")));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);

        for (var i = 0; i < 60; i++)
        {
            await readOnly.GetNewCheckinsAsync();
        }
        var limited = await Assert.ThrowsAsync<GymwireApiException>(() => readOnly.GetNewCheckinsAsync());
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.NotNull(limited.RetryAfter);
        _ = gym;
    }

    [Fact]
    public async Task Cancellation_is_honoured()
    {
        var (_, owner, _) = await SetUpAsync();
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => owner.GetNewMembersAsync(cancelled.Token));
    }
}
