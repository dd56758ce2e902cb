using System.Text;
using System.Text.Json;
using Gymwire.Client;

namespace Gymwire.Tests.Client;

/// <summary>The client's event model reads a delivery's body, and tells a test send (<c>"test": true</c>) from a real event.</summary>
public sealed class WebhookEventTests
{
    private const string Real = """
        {"id":"0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e6f","event":"member.joined","gym_id":"0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e70","data":{"user_id":"user_xyz789"},"timestamp":"2026-04-16T14:30:00.000Z"}
        """;

    private const string TestSend = """
        {"id":"0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e71","event":"payment.successful","gym_id":"0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e70","data":{"user_id":"user_xyz789","amount_cents":4900},"timestamp":"2026-04-16T14:30:00.000Z","test":true}
        """;

    [Fact]
    public void A_real_event_parses_with_its_fields_and_is_not_a_test()
    {
        var parsed = WebhookEvent.Parse(Encoding.UTF8.GetBytes(Real));
        Assert.Equal(Guid.Parse("0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e6f"), parsed.Id);
        Assert.Equal("member.joined", parsed.Event);
        Assert.Equal(Guid.Parse("0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e70"), parsed.GymId);
        Assert.Equal("user_xyz789", parsed.Data.GetProperty("user_id").GetString());
        Assert.Equal(new DateTimeOffset(2026, 4, 16, 14, 30, 0, TimeSpan.Zero), parsed.Timestamp);
        Assert.False(parsed.IsTest);
        Assert.False(WebhookVerifier.IsTestDelivery([new("X-CombatScore-Event", "member.joined")]));
    }

    [Fact]
    public void A_test_send_is_marked_in_the_body_and_in_the_header()
    {
        var parsed = WebhookEvent.Parse(Encoding.UTF8.GetBytes(TestSend));
        Assert.True(parsed.IsTest);
        Assert.Equal("payment.successful", parsed.Event);
        Assert.Equal(4900, parsed.Data.GetProperty("amount_cents").GetInt32());
        Assert.True(WebhookVerifier.IsTestDelivery([new("x-gymwire-test", "true")]));
        Assert.True(WebhookVerifier.IsTestDelivery([new(WebhookVerifier.TestHeader, "True")]));
        Assert.False(WebhookVerifier.IsTestDelivery([new(WebhookVerifier.TestHeader, "false")]));
        // "test": false (never sent, but harmless) is not a test.
        Assert.False(WebhookEvent.Parse(Encoding.UTF8.GetBytes(TestSend.Replace("\"test\":true", "\"test\":false", StringComparison.Ordinal))).IsTest);
    }

    [Fact]
    public void A_body_that_is_not_an_event_is_a_json_exception()
    {
        Assert.ThrowsAny<JsonException>(() => WebhookEvent.Parse("null"u8));
        Assert.ThrowsAny<JsonException>(() => WebhookEvent.Parse("[1]"u8));
        Assert.ThrowsAny<JsonException>(() => WebhookEvent.Parse("{\"id\":"u8));
    }
}
