using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gymwire.Client;

/// <summary>
/// The client's JSON, generated at compile time (no reflection, so it works trimmed and Native AOT-compiled): the
/// wire's snake_case names. Use it for your own parsing too, e.g.
/// <c>JsonSerializer.Deserialize(body, GymwireJsonContext.Default.WebhookEvent)</c>.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web,
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(List<NewMember>))]
[JsonSerializable(typeof(List<NewPayment>))]
[JsonSerializable(typeof(List<NewSession>))]
[JsonSerializable(typeof(List<NewCheckin>))]
[JsonSerializable(typeof(CreateLead))]
[JsonSerializable(typeof(Lead))]
[JsonSerializable(typeof(SendSms))]
[JsonSerializable(typeof(SmsMessage))]
[JsonSerializable(typeof(LogAttendance))]
[JsonSerializable(typeof(Checkin))]
[JsonSerializable(typeof(Me))]
[JsonSerializable(typeof(ApiKey))]
[JsonSerializable(typeof(CreatedApiKey))]
[JsonSerializable(typeof(CreateApiKey))]
[JsonSerializable(typeof(KeyList))]
[JsonSerializable(typeof(Webhook))]
[JsonSerializable(typeof(CreatedWebhook))]
[JsonSerializable(typeof(CreateWebhook))]
[JsonSerializable(typeof(UpdateWebhook))]
[JsonSerializable(typeof(WebhookList))]
[JsonSerializable(typeof(WebhookEvent))]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(JsonElement))]
public sealed partial class GymwireJsonContext : JsonSerializerContext;
