using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gymwire.Client;

/// <summary>
/// A typed client for Gymwire's API (the CombatScore Developer API): polling triggers, actions, and the
/// API-key and webhook management endpoints. Give it an <see cref="HttpClient"/> whose
/// <see cref="HttpClient.BaseAddress"/> is the server, and an API key (<c>cs_…</c>) or owner session token.
/// Every error answer is raised as a <see cref="GymwireApiException"/>.
/// </summary>
public sealed class GymwireClient
{
    /// <summary>The wire's JSON: snake_case names.</summary>
    public static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly HttpClient _http;
    private readonly AuthenticationHeaderValue _authorization;

    /// <summary>Creates a client over <paramref name="http"/> authenticating with <paramref name="bearer"/>.</summary>
    public GymwireClient(HttpClient http, string bearer)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentException.ThrowIfNullOrWhiteSpace(bearer);
        _http = http;
        _authorization = new AuthenticationHeaderValue("Bearer", bearer);
    }

    /// <summary>The 20 most recent members, newest first (<c>type=new_member</c>).</summary>
    public Task<IReadOnlyList<NewMember>> GetNewMembersAsync(CancellationToken cancellationToken = default) => Trigger<NewMember>("new_member", cancellationToken);

    /// <summary>The 20 most recent payments (<c>type=new_payment</c>).</summary>
    public Task<IReadOnlyList<NewPayment>> GetNewPaymentsAsync(CancellationToken cancellationToken = default) => Trigger<NewPayment>("new_payment", cancellationToken);

    /// <summary>The 20 most recent training sessions (<c>type=new_session</c>).</summary>
    public Task<IReadOnlyList<NewSession>> GetNewSessionsAsync(CancellationToken cancellationToken = default) => Trigger<NewSession>("new_session", cancellationToken);

    /// <summary>The 20 most recent check-ins (<c>type=new_checkin</c>).</summary>
    public Task<IReadOnlyList<NewCheckin>> GetNewCheckinsAsync(CancellationToken cancellationToken = default) => Trigger<NewCheckin>("new_checkin", cancellationToken);

    /// <summary>Adds a lead (<c>create_lead</c>). A retry with the same <paramref name="idempotencyKey"/> creates nothing new.</summary>
    public Task<Lead> CreateLeadAsync(CreateLead lead, string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        Action<Lead>("create_lead", lead, idempotencyKey, cancellationToken);

    /// <summary>Queues an SMS (<c>send_sms</c>).</summary>
    public Task<SmsMessage> SendSmsAsync(SendSms sms, string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        Action<SmsMessage>("send_sms", sms, idempotencyKey, cancellationToken);

    /// <summary>Checks a member in (<c>log_attendance</c>).</summary>
    public Task<Checkin> LogAttendanceAsync(LogAttendance attendance, string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        Action<Checkin>("log_attendance", attendance, idempotencyKey, cancellationToken);

    /// <summary>The gym and the key (or owner) the client authenticates as.</summary>
    public Task<Me> GetMeAsync(CancellationToken cancellationToken = default) => Send<Me>(HttpMethod.Get, "/api/me", null, cancellationToken);

    /// <summary>Lists API keys (owner session only): prefixes, never keys.</summary>
    public async Task<IReadOnlyList<ApiKey>> ListApiKeysAsync(CancellationToken cancellationToken = default) =>
        (await Send<KeyList>(HttpMethod.Get, "/api/gym/api-keys", null, cancellationToken)).Keys;

    /// <summary>Creates an API key (owner session only); the result holds the key, this once.</summary>
    public Task<CreatedApiKey> CreateApiKeyAsync(CreateApiKey request, CancellationToken cancellationToken = default) =>
        Send<CreatedApiKey>(HttpMethod.Post, "/api/gym/api-keys", request, cancellationToken);

    /// <summary>Revokes an API key (owner session only); it stops working at once.</summary>
    public Task<ApiKey> RevokeApiKeyAsync(Guid id, CancellationToken cancellationToken = default) =>
        Send<ApiKey>(HttpMethod.Delete, $"/api/gym/api-keys/{id}", null, cancellationToken);

    /// <summary>Lists webhook subscriptions.</summary>
    public async Task<IReadOnlyList<Webhook>> ListWebhooksAsync(CancellationToken cancellationToken = default) =>
        (await Send<WebhookList>(HttpMethod.Get, "/api/gym/webhooks", null, cancellationToken)).Webhooks;

    /// <summary>Creates a webhook subscription; the result holds its signing secret, this once.</summary>
    public Task<CreatedWebhook> CreateWebhookAsync(CreateWebhook request, CancellationToken cancellationToken = default) =>
        Send<CreatedWebhook>(HttpMethod.Post, "/api/gym/webhooks", request, cancellationToken);

    /// <summary>Changes a subscription's URL, events or active state.</summary>
    public Task<Webhook> UpdateWebhookAsync(string id, UpdateWebhook request, CancellationToken cancellationToken = default) =>
        Send<Webhook>(HttpMethod.Patch, $"/api/gym/webhooks/{Uri.EscapeDataString(id)}", request, cancellationToken);

    /// <summary>Deactivates a subscription.</summary>
    public Task DeleteWebhookAsync(string id, CancellationToken cancellationToken = default) =>
        Send<JsonElement>(HttpMethod.Delete, $"/api/gym/webhooks/{Uri.EscapeDataString(id)}", null, cancellationToken);

    private async Task<IReadOnlyList<T>> Trigger<T>(string type, CancellationToken ct) =>
        await Send<List<T>>(HttpMethod.Get, $"/api/zapier/triggers?type={type}", null, ct);

    private Task<T> Action<T>(string type, object body, string? idempotencyKey, CancellationToken ct) =>
        Send<T>(HttpMethod.Post, $"/api/zapier/actions?type={type}", body, ct, idempotencyKey);

    private async Task<T> Send<T>(HttpMethod method, string path, object? body, CancellationToken ct, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = _authorization;
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }
        if (body is not null)
        {
            request.Content = JsonContent.Create(body, body.GetType(), options: JsonOptions);
        }
        using var response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw await ErrorAsync(response, ct).ConfigureAwait(false);
        }
        if (response.StatusCode == HttpStatusCode.NoContent || response.Content.Headers.ContentLength == 0)
        {
            return default!;
        }
        return (await response.Content.ReadFromJsonAsync<T>(JsonOptions, ct).ConfigureAwait(false))!;
    }

    private static async Task<GymwireApiException> ErrorAsync(HttpResponseMessage response, CancellationToken ct)
    {
        string message;
        try
        {
            message = (await response.Content.ReadFromJsonAsync<ErrorBody>(JsonOptions, ct).ConfigureAwait(false))?.Error ?? response.ReasonPhrase ?? "Error";
        }
        catch (JsonException)
        {
            message = response.ReasonPhrase ?? "Error";
        }
        var retryAfter = response.Headers.RetryAfter?.Delta;
        return new GymwireApiException(response.StatusCode, message, retryAfter);
    }
}
