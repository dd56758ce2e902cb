using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gymwire.Client;

/// <summary>
/// A webhook delivery's body: <c>{"id", "event", "gym_id", "data", "timestamp"}</c>, plus <c>"test": true</c> on a
/// test send. Parse it with <see cref="Parse"/> after <see cref="WebhookVerifier"/> has verified the raw bytes.
/// </summary>
public sealed record WebhookEvent
{
    /// <summary>The event's id: the same for every subscription that receives the event, and on every retry.</summary>
    public Guid Id { get; init; }

    /// <summary>The event type, e.g. <c>member.joined</c> (the name the subscription asked for).</summary>
    public string Event { get; init; } = "";

    /// <summary>The gym the event belongs to.</summary>
    public Guid GymId { get; init; }

    /// <summary>The event's fields (see the catalog: <c>GET /api/gym/webhooks/events</c>).</summary>
    public JsonElement Data { get; init; }

    /// <summary>When the event happened (UTC).</summary>
    public DateTimeOffset Timestamp { get; init; }

    /// <summary>
    /// True on a test send (<c>POST /api/gym/webhooks/{id}/test</c> or the dashboard's Test button): the payload
    /// carries <c>"test": true</c> and the request the header <c>X-Gymwire-Test: true</c>. Real events have neither,
    /// so this is false for them. A receiver should acknowledge a test (2xx) and not act on it.
    /// </summary>
    [JsonPropertyName("test")]
    public bool IsTest { get; init; }

    /// <summary>Parses a delivery's raw body (verify it first).</summary>
    /// <exception cref="JsonException">The body is not a webhook event.</exception>
    public static WebhookEvent Parse(ReadOnlySpan<byte> body) =>
        JsonSerializer.Deserialize(body, GymwireJsonContext.Default.WebhookEvent) ?? throw new JsonException("The body is JSON null, not a webhook event.");
}
