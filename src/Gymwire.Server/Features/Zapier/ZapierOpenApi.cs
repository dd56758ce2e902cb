using System.Text.Json.Nodes;
using Gymwire.Features.Attendance;
using Gymwire.Features.Leads;
using Gymwire.Features.Sms;
using Gymwire.Infrastructure.OpenApi;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Gymwire.Features.Zapier;

/// <summary>
/// The two Zapier endpoints take their shape from <c>?type=</c>, which the framework cannot see: this
/// describes the type enums, the per-type request bodies and the per-type responses.
/// </summary>
internal static class ZapierOpenApi
{
    public static async Task DescribeZapierOperation(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        switch (context.Description.RelativePath)
        {
            case "api/zapier/triggers":
                TypeParameter(operation, ZapierTriggers.Types, "Which trigger to poll.");
                operation.Summary = "Poll a trigger: the 20 most recent items, newest first";
                operation.Description = "With only `type`: the CombatScore contract, the 20 most recent items, newest first, exactly the documented fields. " +
                    "More than 20 items between two polls are not all seen that way; `after_sequence` makes polling lossless (docs/polling.md). " +
                    "`new_checkin` holds kiosk check-ins (`POST /api/gym/checkins`); check-ins logged through `log_attendance` are in the event feed. " +
                    "`new_member` includes members who have since left.";
                Describe(operation, "limit", $"Optional, 1 to {ZapierTriggers.MaxLimit} (default {ZapierTriggers.Limit}): how many items. Alone it changes only the count.");
                Describe(operation, "after_sequence", "Optional, 0 or more. The items created after this position of the gym's event log " +
                    "(the `sequence` of `GET /api/gym/events`), oldest first, each with one more field, `sequence`; " +
                    $"the response header `{ZapierTriggers.NextAfterSequenceHeader}` is the value to send next. Start with 0. " +
                    "Positions follow commit order, so an item committed late is never passed over. You are caught up when the header " +
                    "repeats the value you sent; an empty answer with the header moved on passed events that have no item: poll again with it.");
                operation.Responses!["200"] = new OpenApiResponse
                {
                    Description = "A bare JSON array of at most 20 items (or `limit`), newest first; the item shape depends on `type`. " +
                        $"With `after_sequence`: oldest first, each item with `sequence`, and the `{ZapierTriggers.NextAfterSequenceHeader}` header.",
                    Headers = new Dictionary<string, IOpenApiHeader>
                    {
                        [ZapierTriggers.NextAfterSequenceHeader] = new OpenApiHeader
                        {
                            Description = "Only with `after_sequence`: the position to poll after next time.",
                            Schema = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64" },
                        },
                    },
                    // One array whose items are any of the four shapes (rather than one of four arrays): a generator
                    // can read an item without a discriminator (Kiota fills each shape it matches).
                    Content = Json(new OpenApiSchema
                    {
                        Type = JsonSchemaType.Array,
                        MaxItems = ZapierTriggers.MaxLimit,
                        Items = new OpenApiSchema
                        {
                            AnyOf =
                            [
                                await Titled<NewMemberItem>(context, ct, "type=new_member"),
                                await Titled<NewPaymentItem>(context, ct, "type=new_payment"),
                                await Titled<NewSessionItem>(context, ct, "type=new_session"),
                                await Titled<NewCheckinItem>(context, ct, "type=new_checkin"),
                            ],
                        },
                    }),
                };
                break;
            case "api/zapier/actions":
                TypeParameter(operation, ZapierActions.Types, "Which action to run.");
                operation.Summary = "Run an action: create a lead, queue an SMS or log attendance";
                operation.Parameters!.Add(new OpenApiParameter
                {
                    Name = ZapierActions.IdempotencyHeader,
                    In = ParameterLocation.Header,
                    Description = "Optional. A retry with the same key (within 24 h) returns the first result and creates nothing new; the same key with a different body is 409.",
                    Schema = new OpenApiSchema { Type = JsonSchemaType.String, MaxLength = 255 },
                });
                operation.RequestBody = new OpenApiRequestBody
                {
                    Required = true,
                    Description = "`create_lead`: first_name required; phone as people write it, e.g. (555) 123-4567; an empty optional field counts as not given. `send_sms`: phone (E.164) and message (1..1600 chars) required. `log_attendance`: user_id required.",
                    Content = Json(new OpenApiSchema
                    {
                        OneOf =
                        [
                            await Titled<CreateLeadRequest>(context, ct, "type=create_lead", "first_name"),
                            await Titled<SendSmsRequest>(context, ct, "type=send_sms", "phone", "message"),
                            await Titled<LogAttendanceRequest>(context, ct, "type=log_attendance", "user_id"),
                        ],
                    }),
                };
                operation.Responses!.Remove("200");
                operation.Responses["201"] = new OpenApiResponse
                {
                    Description = "The created object: a lead, a queued SMS, or a check-in.",
                    // anyOf, not oneOf: the three have no discriminator field (the query's `type` decides), and
                    // generators deserialize an anyOf into each shape it matches instead of giving up.
                    Content = Json(new OpenApiSchema
                    {
                        AnyOf =
                        [
                            await Titled<LeadDto>(context, ct, "type=create_lead"),
                            await Titled<SmsDto>(context, ct, "type=send_sms"),
                            await Titled<AttendanceDto>(context, ct, "type=log_attendance"),
                        ],
                    }),
                };
                OpenApiSetup.AddError(operation, context, "404", "log_attendance: no such member in this gym.");
                OpenApiSetup.AddError(operation, context, "409", "The Idempotency-Key was used with a different request.");
                OpenApiSetup.AddError(operation, context, "415", "The body must be application/json.");
                break;
            default:
                break;
        }
    }

    private static void Describe(OpenApiOperation operation, string name, string description)
    {
        if (operation.Parameters?.FirstOrDefault(p => p.Name == name) is OpenApiParameter parameter)
        {
            parameter.Description = description;
        }
    }

    private static void TypeParameter(OpenApiOperation operation, string[] values, string description)
    {
        operation.Parameters ??= [];
        var existing = operation.Parameters.FirstOrDefault(p => p.Name == "type");
        if (existing is not null)
        {
            operation.Parameters.Remove(existing);
        }
        operation.Parameters.Insert(0, new OpenApiParameter
        {
            Name = "type",
            In = ParameterLocation.Query,
            Required = true,
            Description = description,
            Schema = new OpenApiSchema { Type = JsonSchemaType.String, Enum = values.Select(v => (JsonNode)JsonValue.Create(v)!).ToList() },
        });
    }

    private static async Task<IOpenApiSchema> Titled<T>(OpenApiOperationTransformerContext context, CancellationToken ct, string title, params string[] required)
    {
        var schema = await context.GetOrCreateSchemaAsync(typeof(T), null, ct);
        schema.Title = title;
        if (required.Length > 0)
        {
            schema.Required = new HashSet<string>(required);
        }
        return schema;
    }

    private static Dictionary<string, OpenApiMediaType> Json(IOpenApiSchema schema) => new() { ["application/json"] = new OpenApiMediaType { Schema = schema } };
}
