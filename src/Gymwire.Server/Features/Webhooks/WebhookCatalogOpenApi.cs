using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Every catalog event as an OpenAPI <c>webhooks</c> entry: the POST Gymwire sends, its signature headers,
/// and the payload with a sample. (OpenAPI 3.0 has no <c>webhooks</c>; the 3.0 document carries them as
/// <c>x-webhooks</c>, the convention Redoc reads.)
/// </summary>
internal static class WebhookCatalogOpenApi
{
    public static Task AddWebhooks(OpenApiDocument document, OpenApiSpecVersion version)
    {
        var webhooks = new Dictionary<string, IOpenApiPathItem>();
        if (version == OpenApiSpecVersion.OpenApi3_0)
        {
            document.Extensions ??= new Dictionary<string, IOpenApiExtension>();
            document.Extensions["x-webhooks"] = new WebhooksExtension(webhooks);
        }
        else
        {
            document.Webhooks = webhooks;
        }
        foreach (var type in EventCatalog.All)
        {
            var sample = new JsonObject
            {
                ["id"] = "0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e6f",
                ["event"] = type.Name,
                ["gym_id"] = "0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e70",
                ["data"] = JsonSerializer.SerializeToNode(type.SampleData, GymwireJson.Options),
                ["timestamp"] = "2026-04-16T14:30:00.000Z",
            };
            var operation = new OpenApiOperation
            {
                OperationId = "webhook_" + type.Name.Replace('.', '_'),
                // Gymwire calls the receiver; authenticity comes from the signature headers, not from a scheme.
                Security = [new OpenApiSecurityRequirement()],
                Summary = type.Description,
                Description = (type.AliasOf is null ? "" : $"GymPoint name of `{type.AliasOf}`: subscribers that name it receive this name in `event`. ") +
                              "Verify `X-CombatScore-Signature` (hex HMAC-SHA256 of the raw body, keyed by the secret) or the Standard Webhooks `webhook-signature`.",
                Parameters =
                [
                    Header("X-CombatScore-Signature", "Hex HMAC-SHA256 of the raw JSON body, keyed by the webhook secret."),
                    Header("X-CombatScore-Event", "The event type, e.g. member.joined."),
                    Header("webhook-id", "Standard Webhooks message id; the same on every retry: dedupe on it."),
                    Header("webhook-timestamp", "Standard Webhooks timestamp (Unix seconds)."),
                    Header("webhook-signature", "Standard Webhooks signatures: space-separated `v1,<base64>` over `{id}.{timestamp}.{body}`."),
                    new OpenApiParameter
                    {
                        Name = "X-Gymwire-Test", In = ParameterLocation.Header, Required = false,
                        Description = "`true` on test sends (`POST /api/gym/webhooks/{id}/test`) only; real events never carry it.",
                        Schema = new OpenApiSchema { Type = JsonSchemaType.String, Const = "true" },
                    },
                ],
                RequestBody = new OpenApiRequestBody
                {
                    Required = true,
                    Content = new Dictionary<string, OpenApiMediaType>
                    {
                        ["application/json"] = new() { Schema = Envelope(type), Example = sample },
                    },
                },
                Responses = new OpenApiResponses
                {
                    ["2XX"] = new OpenApiResponse { Description = "Delivered. Anything else (or a timeout) is a failed attempt and is retried; 410 deactivates the subscription." },
                },
            };
            webhooks[type.Name] = new OpenApiPathItem { Operations = new() { [HttpMethod.Post] = operation } };
        }
        return Task.CompletedTask;
    }

    private static OpenApiParameter Header(string name, string description) =>
        new() { Name = name, In = ParameterLocation.Header, Required = true, Description = description, Schema = new OpenApiSchema { Type = JsonSchemaType.String } };

    private static OpenApiSchema Envelope(EventType type) => new()
    {
        Type = JsonSchemaType.Object,
        Required = new HashSet<string> { "id", "event", "gym_id", "data", "timestamp" },
        Properties = new Dictionary<string, IOpenApiSchema>
        {
            ["id"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "uuid", Description = "The event id: the same in every subscription's delivery of this event. Receivers deduplicate on the `webhook-id` header instead, which differs per subscription and stays the same on every retry." },
            ["event"] = new OpenApiSchema { Type = JsonSchemaType.String, Enum = [JsonValue.Create(type.Name)] },
            ["gym_id"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "uuid" },
            ["data"] = DataSchema(type.SampleData),
            ["timestamp"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "date-time", Description = "ISO-8601 UTC with milliseconds." },
            ["test"] = new OpenApiSchema { Type = JsonSchemaType.Boolean, Description = "`true` on a test send (`POST /api/gym/webhooks/{id}/test`, which also sets the header `X-Gymwire-Test: true`); absent on real events." },
        },
    };

    // Keys whose value is null when the record has none (a payment without a plan, a check-in outside a class, a lead without a last name).
    private static readonly HashSet<string> NullableKeys = ["plan_id", "class_schedule_id", "last_name"];

    private static OpenApiSchema DataSchema(IReadOnlyDictionary<string, object?> sample) => new()
    {
        Type = JsonSchemaType.Object,
        Required = new HashSet<string>(sample.Keys),
        Properties = sample.ToDictionary(kv => kv.Key, kv => (IOpenApiSchema)new OpenApiSchema
        {
            Type = (kv.Value switch
            {
                int or long => JsonSchemaType.Integer,
                string[] => JsonSchemaType.Array,
                _ => JsonSchemaType.String,
            }) | (NullableKeys.Contains(kv.Key) ? JsonSchemaType.Null : 0),
            Items = kv.Value is string[] ? new OpenApiSchema { Type = JsonSchemaType.String } : null,
        }),
    };

    /// <summary>Writes the path items as a 3.0 document writes its paths.</summary>
    private sealed class WebhooksExtension(Dictionary<string, IOpenApiPathItem> webhooks) : IOpenApiExtension
    {
        public void Write(IOpenApiWriter writer, OpenApiSpecVersion specVersion)
        {
            writer.WriteStartObject();
            foreach (var (name, item) in webhooks)
            {
                writer.WritePropertyName(name);
                item.SerializeAsV3(writer);
            }
            writer.WriteEndObject();
        }
    }
}
