using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;

namespace Gymwire.Features.Webhooks;

/// <summary>Which events a subscription receives, under which name, and the body it is sent.</summary>
public static class WebhookPayloads
{
    /// <summary>
    /// The name a subscription receives <paramref name="canonical"/> under, or null when it does not want it.
    /// An empty list is every canonical event (once); a named alias is sent under the alias; when a
    /// subscription names both an event and its alias, the canonical name wins, so it still gets one delivery.
    /// </summary>
    public static string? SubscribedName(IReadOnlyCollection<string> events, string canonical)
    {
        if (events.Count == 0 || events.Contains(canonical))
        {
            return canonical;
        }
        foreach (var name in events)
        {
            if (EventCatalog.ByName.TryGetValue(name, out var type) && type.AliasOf == canonical)
            {
                return name;
            }
        }
        return null;
    }

    /// <summary>The header that marks a test send (<c>POST /api/gym/webhooks/{id}/test</c>); real deliveries never carry it.</summary>
    public const string TestHeader = "X-Gymwire-Test";

    /// <summary>
    /// <c>{"id","event","gym_id","data","timestamp"}</c>, with <c>data</c> written verbatim from the outbox. A test send
    /// adds <c>"test": true</c> last, so a receiver can tell it from a real event by the body as well as by the header.
    /// </summary>
    public static string Build(Guid id, string eventName, Guid gymId, string dataJson, DateTime timestamp, bool test = false) =>
        Encoding.UTF8.GetString(BuildUtf8(id, eventName, gymId, dataJson, timestamp, test));

    /// <summary><see cref="Build"/>'s body as the UTF-8 bytes that are sent.</summary>
    public static byte[] BuildUtf8(Guid id, string eventName, Guid gymId, string dataJson, DateTime timestamp, bool test = false)
    {
        // Room for ASCII data and the envelope around it, so that it rarely grows.
        var buffer = new ArrayBufferWriter<byte>(dataJson.Length + 256);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            writer.WriteString("id", id);
            writer.WriteString("event", eventName);
            writer.WriteString("gym_id", gymId);
            writer.WritePropertyName("data");
            writer.WriteRawValue(dataJson);
            writer.WriteString("timestamp", GymwireJson.FormatTimestamp(timestamp));
            if (test)
            {
                writer.WriteBoolean("test", true);
            }
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// <see cref="BuildUtf8"/> for an event read back from the outbox: null when its data is not JSON (changed by hand), so
    /// that only that event's deliveries fail, with an error that says so, instead of every fan-out and claim it is read by.
    /// </summary>
    public static byte[]? BuildUtf8FromOutbox(Guid id, string eventName, Guid gymId, string dataJson, DateTime timestamp)
    {
        try
        {
            return BuildUtf8(id, eventName, gymId, dataJson, timestamp);
        }
        catch (Exception e) when (e is ArgumentException or JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// The body a delivery is sent: its stored body if it has one, else its outbox event's envelope under the name the
    /// subscription receives it by; null when neither exists (the event row was deleted by hand) or the event's data is
    /// not JSON (changed by hand).
    /// </summary>
    public static string? For(string? stored, Guid? eventId, string eventName, Guid gymId, string? data, DateTime? occurredAt) =>
        stored ?? (eventId is { } id && data is not null && occurredAt is { } at && BuildUtf8FromOutbox(id, eventName, gymId, data, at) is { } body
            ? Encoding.UTF8.GetString(body)
            : null);

    /// <summary>A realistic body for <paramref name="type"/>, as the catalog shows it (a real event's shape).</summary>
    public static string Sample(EventType type, Guid id, Guid gymId, DateTime timestamp) =>
        Build(id, type.Name, gymId, JsonSerializer.Serialize(type.SampleData, GymwireJson.Options), timestamp);

    /// <summary>The body of a test send: the sample, marked <c>"test": true</c>.</summary>
    public static string TestSample(EventType type, Guid id, Guid gymId, DateTime timestamp) =>
        Build(id, type.Name, gymId, JsonSerializer.Serialize(type.SampleData, GymwireJson.Options), timestamp, test: true);
}
