using System.Text.Encodings.Web;
using System.Text.Json.Serialization;

namespace Gymwire.Infrastructure;

/// <summary>The wire's JSON conventions: snake_case names, UTC timestamps with milliseconds (and read as UTC when they have no offset).</summary>
public static class GymwireJson
{
    public static readonly JsonSerializerOptions Options = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    public static JsonSerializerOptions Configure(JsonSerializerOptions options)
    {
        options.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        options.DictionaryKeyPolicy = null;
        options.PropertyNameCaseInsensitive = false;
        options.NumberHandling = JsonNumberHandling.Strict;
        options.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
        // Responses are application/json, never HTML: no need to escape quotes, apostrophes or non-ASCII names.
        options.Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
        if (!options.Converters.OfType<UtcDateTimeConverter>().Any())
        {
            options.Converters.Add(new UtcDateTimeConverter());
        }
        return options;
    }

    /// <summary>Formats a UTC instant the way the contract does: <c>2026-04-16T12:00:00.000Z</c>.</summary>
    public static string FormatTimestamp(DateTime utc) =>
        DateTime.SpecifyKind(utc, DateTimeKind.Utc).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private sealed class UtcDateTimeConverter : JsonConverter<DateTime>
    {
        public override DateTime Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType == JsonTokenType.String)
            {
                // A time without an offset is UTC, as the API writes times and the CLI reads them. TryGetDateTime leaves
                // it unspecified; TryGetDateTimeOffset would read it in the server machine's own time zone.
                if (reader.TryGetDateTime(out var written) && written.Kind == DateTimeKind.Unspecified)
                {
                    return DateTime.SpecifyKind(written, DateTimeKind.Utc);
                }
                if (reader.TryGetDateTimeOffset(out var value))
                {
                    return value.UtcDateTime;
                }
            }
            throw new JsonException("Expected an ISO-8601 date-time string.");
        }

        public override void Write(Utf8JsonWriter writer, DateTime value, JsonSerializerOptions options) =>
            writer.WriteStringValue(FormatTimestamp(value.Kind == DateTimeKind.Local ? value.ToUniversalTime() : value));
    }
}
