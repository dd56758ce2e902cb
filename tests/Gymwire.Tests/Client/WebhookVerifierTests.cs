using System.Security.Cryptography;
using System.Text;
using Gymwire.Client;
using Microsoft.Extensions.Time.Testing;

namespace Gymwire.Tests.Client;

public sealed class WebhookVerifierTests
{
    // The Standard Webhooks specification's published example.
    private const string SpecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string SpecId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    private const string SpecTimestamp = "1614265330";
    private const string SpecBody = "{\"test\": 2432232314}";
    private const string SpecSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    private static FakeTimeProvider At(long unixSeconds) => new(DateTimeOffset.FromUnixTimeSeconds(unixSeconds));

    [Fact]
    public void Accepts_the_standard_webhooks_specification_example()
    {
        var verifier = new WebhookVerifier(SpecSecret, clock: At(1614265330));
        Assert.True(verifier.VerifyStandard(SpecId, SpecTimestamp, SpecSignature, Encoding.UTF8.GetBytes(SpecBody)));
        Assert.True(verifier.VerifyStandard(SpecId, SpecTimestamp, "v1,bm9wZQ== " + SpecSignature, Encoding.UTF8.GetBytes(SpecBody)));
    }

    [Fact]
    public void Rejects_tampered_bodies_ids_and_signatures_and_stale_timestamps()
    {
        var verifier = new WebhookVerifier(SpecSecret, clock: At(1614265330));
        Assert.False(verifier.VerifyStandard(SpecId, SpecTimestamp, SpecSignature, Encoding.UTF8.GetBytes("{\"test\": 2432232315}")));
        Assert.False(verifier.VerifyStandard("msg_other", SpecTimestamp, SpecSignature, Encoding.UTF8.GetBytes(SpecBody)));
        Assert.False(verifier.VerifyStandard(SpecId, SpecTimestamp, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=", Encoding.UTF8.GetBytes(SpecBody)));
        Assert.False(verifier.VerifyStandard(SpecId, SpecTimestamp, "v2," + SpecSignature[3..], Encoding.UTF8.GetBytes(SpecBody)));
        Assert.False(verifier.VerifyStandard(SpecId, "not-a-number", SpecSignature, Encoding.UTF8.GetBytes(SpecBody)));

        var late = new WebhookVerifier(SpecSecret, clock: At(1614265330 + 301));
        Assert.False(late.VerifyStandard(SpecId, SpecTimestamp, SpecSignature, Encoding.UTF8.GetBytes(SpecBody)));
        var early = new WebhookVerifier(SpecSecret, clock: At(1614265330 - 301));
        Assert.False(early.VerifyStandard(SpecId, SpecTimestamp, SpecSignature, Encoding.UTF8.GetBytes(SpecBody)));
    }

    [Theory]
    [InlineData("253402300800")] // one second past the last one a DateTimeOffset holds
    [InlineData("99999999999999")]
    [InlineData("9223372036854775807")]
    public void A_timestamp_past_year_9999_is_refused_not_thrown(string timestamp)
    {
        var verifier = new WebhookVerifier(SpecSecret, clock: At(1614265330));
        var body = Encoding.UTF8.GetBytes(SpecBody);
        Assert.False(verifier.VerifyStandard(SpecId, timestamp, SpecSignature, body));
        Assert.False(verifier.Verify([new("webhook-id", SpecId), new("webhook-timestamp", timestamp), new("webhook-signature", SpecSignature)], body));
        // The last second it holds is merely stale.
        Assert.False(verifier.VerifyStandard(SpecId, "253402300799", SpecSignature, body));
    }

    [Fact]
    public void Verifies_the_combatscore_hex_signature_as_the_reference_express_receiver_computes_it()
    {
        const string secret = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtMTIzNDU2Nzg5MA==";
        var body = Encoding.UTF8.GetBytes("{\"event\":\"member.joined\",\"data\":{\"user_id\":\"user_xyz789\"}}");
        // crypto.createHmac('sha256', secret).update(rawBody).digest('hex'): the key is the secret string's bytes.
        var hex = Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body));
        var verifier = new WebhookVerifier(secret);
        Assert.True(verifier.VerifyCombatScore(hex, body));
        Assert.True(verifier.VerifyCombatScore(hex.ToUpperInvariant(), body));
        Assert.False(verifier.VerifyCombatScore(hex, [.. body, (byte)' ']));
        Assert.False(new WebhookVerifier("whsec_b3RoZXI=").VerifyCombatScore(hex, body));
        Assert.True(verifier.Verify([new("x-combatscore-signature", hex)], body));
        Assert.False(verifier.Verify([], body));
    }

    [Fact]
    public void During_a_rotation_either_secret_verifies()
    {
        var verifier = new WebhookVerifier(["whsec_b2xkLXNlY3JldA==", SpecSecret], clock: At(1614265330));
        Assert.True(verifier.Verify(
            [new("webhook-id", SpecId), new("webhook-timestamp", SpecTimestamp), new("webhook-signature", SpecSignature)],
            Encoding.UTF8.GetBytes(SpecBody)));
    }
}
