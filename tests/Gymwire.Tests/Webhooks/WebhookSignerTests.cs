using System.Text;
using Gymwire.Features.Webhooks;
using Gymwire.Infrastructure;
using Microsoft.Extensions.Configuration;

namespace Gymwire.Tests.Webhooks;

public sealed class WebhookSignerTests
{
    [Fact]
    public void Standard_signature_matches_the_specification_test_vector()
    {
        // The example from the Standard Webhooks specification.
        var signature = WebhookSigner.StandardSignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
            Encoding.UTF8.GetBytes("""{"test": 2432232314}"""));
        Assert.Equal("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", signature);
    }

    [Fact]
    public void CombatScore_signature_is_hex_hmac_of_the_body_keyed_by_the_secret_string()
    {
        // As Node computes it: crypto.createHmac("sha256", "whsec_abc").update('{"a":1}').digest("hex").
        var body = Encoding.UTF8.GetBytes("""{"a":1}""");
        var signature = WebhookSigner.CombatScoreSignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", body);
        Assert.Matches("^[0-9a-f]{64}$", signature);
        Assert.True(StandardWebhooksVerifier.VerifyCombatScore("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            new Dictionary<string, string> { ["x-combatscore-signature"] = signature }, body));
    }

    [Fact]
    public void During_rotation_both_secrets_sign_and_the_combatscore_header_uses_the_new_one()
    {
        var (oldSecret, newSecret) = (WebhookSigner.NewSecret(), WebhookSigner.NewSecret());
        var body = Encoding.UTF8.GetBytes("""{"event":"member.joined"}""");
        var now = DateTimeOffset.FromUnixTimeSeconds(1_776_340_800);
        var headers = WebhookSigner.Headers([newSecret, oldSecret], "msg_1", now, body)
            .ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value);
        Assert.Equal(2, headers["webhook-signature"].Split(' ').Length);
        Assert.Equal("1776340800", headers["webhook-timestamp"]);
        Assert.True(StandardWebhooksVerifier.Verify(oldSecret, headers, body, now));
        Assert.True(StandardWebhooksVerifier.Verify(newSecret, headers, body, now));
        Assert.False(StandardWebhooksVerifier.Verify(WebhookSigner.NewSecret(), headers, body, now));
        Assert.False(StandardWebhooksVerifier.Verify(newSecret, headers, body, now.AddMinutes(6))); // replay window
        Assert.True(StandardWebhooksVerifier.VerifyCombatScore(newSecret, headers, body));
        Assert.False(StandardWebhooksVerifier.VerifyCombatScore(oldSecret, headers, body));
    }

    [Theory]
    [InlineData("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true)] // 24 bytes
    [InlineData("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", true)] // 32 bytes
    [InlineData("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false)]
    [InlineData("whsec_c2hvcnQ=", false)]
    [InlineData("whsec_not base64!", false)]
    [InlineData("whsec_", false)]
    [InlineData("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ", false)]
    [InlineData("whsec_MfKQ9r8GKYqr\nTwjUPD8ILPZIo2LaLaSw", false)]
    [InlineData("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==", true)] // 64 bytes
    [InlineData("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw== ", false)]
    public void Custom_secrets_must_be_whsec_and_24_to_64_bytes(string secret, bool valid) =>
        Assert.Equal(valid, WebhookSigner.ValidateSecret(secret) is null);

    [Fact]
    public void Payload_keeps_the_documented_field_order_and_the_data_verbatim()
    {
        var id = Guid.Parse("0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e60");
        var gym = Guid.Parse("0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e61");
        var json = WebhookPayloads.Build(id, "member.created", gym, """{"user_id":"user_xyz789"}""", new DateTime(2026, 4, 16, 12, 0, 0, DateTimeKind.Utc));
        Assert.Equal("""{"id":"0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e60","event":"member.created","gym_id":"0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e61","data":{"user_id":"user_xyz789"},"timestamp":"2026-04-16T12:00:00.000Z"}""", json);
    }

    [Theory]
    [InlineData(new string[0], "member.joined", "member.joined")]
    [InlineData(new[] { "member.created" }, "member.joined", "member.created")]
    [InlineData(new[] { "member.created", "member.joined" }, "member.joined", "member.joined")]
    [InlineData(new[] { "payment.successful" }, "member.joined", null)]
    [InlineData(new[] { "checkin.created" }, "attendance.checked_in", "checkin.created")]
    public void Subscriptions_receive_aliases_by_the_name_they_chose(string[] events, string canonical, string? expected) =>
        Assert.Equal(expected, WebhookPayloads.SubscribedName(events, canonical));

    [Fact]
    public void Options_validation_names_the_setting()
    {
        var validator = new WebhookOptionsValidator();
        var result = validator.Validate(null, new WebhookOptions
        {
            Timeout = TimeSpan.FromMinutes(1),
            AllowedNetworks = ["not-a-cidr"],
            RetrySchedule = [TimeSpan.Zero],
            MaxConcurrentPerEndpoint = 1000,
            FailingEndpointThreshold = -1,
            FailingEndpointMaxPause = TimeSpan.Zero,
        });
        Assert.True(result.Failed);
        Assert.Contains("Webhooks:Timeout", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("Webhooks:AllowedNetworks:0", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("Webhooks:RetrySchedule:0", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("Webhooks:MaxConcurrentPerEndpoint", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("Webhooks:FailingEndpointThreshold", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("Webhooks:FailingEndpointMaxPause", result.FailureMessage, StringComparison.Ordinal);
        Assert.True(validator.Validate(null, new WebhookOptions()).Succeeded);
        Assert.Equal("2026-04-16T12:00:00.000Z", GymwireJson.FormatTimestamp(new DateTime(2026, 4, 16, 12, 0, 0, DateTimeKind.Utc)));
    }

    [Theory]
    [InlineData("true", "true", 2)]
    [InlineData("false", "true", 1)]
    [InlineData("true", "false", 1)]
    [InlineData("false", "false", 0)]
    public void Dispatcher_and_worker_roles_can_be_switched_off(string dispatcher, string worker, int expected)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Webhooks:DispatcherEnabled"] = dispatcher,
            ["Webhooks:WorkerEnabled"] = worker,
        }).Build();
        var services = new ServiceCollection().AddWebhooks(configuration);
        var roles = services.Where(d => d.ServiceType == typeof(Microsoft.Extensions.Hosting.IHostedService)
            && (d.ImplementationType == typeof(WebhookDispatcher) || d.ImplementationType == typeof(DeliveryWorker)));
        Assert.Equal(expected, roles.Count());
    }

    [Fact]
    public async Task A_bad_webhooks_setting_stops_the_server_at_start()
    {
        var directory = Directory.CreateTempSubdirectory("gymwire-options-");
        try
        {
            var builder = GymwireApp.CreateBuilder(["--urls=http://127.0.0.1:0", $"--ConnectionStrings:Gymwire=Data Source={Path.Combine(directory.FullName, "g.db")}", "--Webhooks:Timeout=00:01:00"]);
            builder.Logging.ClearProviders();
            await using var app = GymwireApp.Build(builder);
            var e = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => app.StartAsync());
            Assert.Contains("Webhooks:Timeout", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
    }
}
