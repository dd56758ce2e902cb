using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Gymwire.Infrastructure.OpenApi;

/// <summary>
/// Gives every schema a <c>type</c>, so that client generators produce typed code instead of "any": the
/// framework leaves the timestamps (which go through <see cref="GymwireJson"/>'s converter) without one, and
/// <see cref="JsonElement"/> fields (event data, payloads, samples: always JSON objects) as <c>{}</c>.
/// </summary>
internal static class OpenApiSchemaTypes
{
    public static Task TypeSchema(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken ct)
    {
        var type = context.JsonTypeInfo.Type;
        var underlying = Nullable.GetUnderlyingType(type);
        if ((underlying ?? type) == typeof(DateTime) || (underlying ?? type) == typeof(DateTimeOffset))
        {
            schema.Type = underlying is null ? JsonSchemaType.String : JsonSchemaType.String | JsonSchemaType.Null;
            schema.Format = "date-time";
        }
        else if ((underlying ?? type) == typeof(JsonElement))
        {
            schema.Type = underlying is null ? JsonSchemaType.Object : JsonSchemaType.Object | JsonSchemaType.Null;
            schema.Description ??= "A JSON object.";
        }
        return Task.CompletedTask;
    }

    /// <summary>
    /// An optional body (a nullable parameter, such as the test send's) comes out as <c>oneOf: [null, X]</c>, which
    /// OpenAPI 3.0 cannot say and generators turn into a union: describe it as X with <c>required: false</c>.
    /// </summary>
    public static Task UnwrapOptionalBody(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        foreach (var media in operation.RequestBody?.Content?.Values ?? [])
        {
            if (media.Schema is OpenApiSchema { OneOf: { Count: 2 } oneOf } && oneOf.Count(IsNull) == 1)
            {
                media.Schema = oneOf.Single(s => !IsNull(s));
                if (operation.RequestBody is OpenApiRequestBody body)
                {
                    body.Required = false;
                }
            }
        }
        return Task.CompletedTask;
    }

    private static bool IsNull(IOpenApiSchema schema) => schema is OpenApiSchema { Type: JsonSchemaType.Null };
}
