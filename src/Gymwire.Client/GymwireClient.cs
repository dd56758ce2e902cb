using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Gymwire.Client;

/// <summary>
/// A typed client for Gymwire's API (the CombatScore Developer API): polling triggers, actions, and the
/// API-key and webhook management endpoints. Give it an <see cref="HttpClient"/> whose
/// <see cref="HttpClient.BaseAddress"/> is the server, and an API key (<c>cs_…</c>) or owner session token.
/// Every error answer is raised as a <see cref="GymwireApiException"/>. All JSON goes through the source-generated
/// <see cref="GymwireJsonContext"/>, so the client works in trimmed and Native AOT apps.
/// </summary>
public sealed class GymwireClient
{
    /// <summary>The wire's JSON (snake_case names), resolving the client's types from <see cref="GymwireJsonContext"/>.</summary>
    public static JsonSerializerOptions JsonOptions => GymwireJsonContext.Default.Options;

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
    public Task<IReadOnlyList<NewMember>> GetNewMembersAsync(CancellationToken cancellationToken = default) => Trigger("new_member", GymwireJsonContext.Default.ListNewMember, cancellationToken);

    /// <summary>The 20 most recent payments (<c>type=new_payment</c>).</summary>
    public Task<IReadOnlyList<NewPayment>> GetNewPaymentsAsync(CancellationToken cancellationToken = default) => Trigger("new_payment", GymwireJsonContext.Default.ListNewPayment, cancellationToken);

    /// <summary>The 20 most recent training sessions (<c>type=new_session</c>).</summary>
    public Task<IReadOnlyList<NewSession>> GetNewSessionsAsync(CancellationToken cancellationToken = default) => Trigger("new_session", GymwireJsonContext.Default.ListNewSession, cancellationToken);

    /// <summary>The 20 most recent check-ins (<c>type=new_checkin</c>).</summary>
    public Task<IReadOnlyList<NewCheckin>> GetNewCheckinsAsync(CancellationToken cancellationToken = default) => Trigger("new_checkin", GymwireJsonContext.Default.ListNewCheckin, cancellationToken);

    /// <summary>Adds a lead (<c>create_lead</c>). A retry with the same <paramref name="idempotencyKey"/> creates nothing new.</summary>
    public Task<Lead> CreateLeadAsync(CreateLead lead, string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        Action("create_lead", lead, GymwireJsonContext.Default.CreateLead, GymwireJsonContext.Default.Lead, idempotencyKey, cancellationToken);

    /// <summary>Queues an SMS (<c>send_sms</c>).</summary>
    public Task<SmsMessage> SendSmsAsync(SendSms sms, string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        Action("send_sms", sms, GymwireJsonContext.Default.SendSms, GymwireJsonContext.Default.SmsMessage, idempotencyKey, cancellationToken);

    /// <summary>Checks a member in (<c>log_attendance</c>).</summary>
    public Task<Checkin> LogAttendanceAsync(LogAttendance attendance, string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        Action("log_attendance", attendance, GymwireJsonContext.Default.LogAttendance, GymwireJsonContext.Default.Checkin, idempotencyKey, cancellationToken);

    /// <summary>The gym and the key (or owner) the client authenticates as.</summary>
    public Task<Me> GetMeAsync(CancellationToken cancellationToken = default) => Send(HttpMethod.Get, "/api/me", null, GymwireJsonContext.Default.Me, cancellationToken);

    /// <summary>Lists API keys (owner session only): prefixes, never keys.</summary>
    public async Task<IReadOnlyList<ApiKey>> ListApiKeysAsync(CancellationToken cancellationToken = default) =>
        (await Send(HttpMethod.Get, "/api/gym/api-keys", null, GymwireJsonContext.Default.KeyList, cancellationToken)).Keys;

    /// <summary>Creates an API key (owner session only); the result holds the key, this once.</summary>
    public Task<CreatedApiKey> CreateApiKeyAsync(CreateApiKey request, CancellationToken cancellationToken = default) =>
        Send(HttpMethod.Post, "/api/gym/api-keys", Body(request, GymwireJsonContext.Default.CreateApiKey), GymwireJsonContext.Default.CreatedApiKey, cancellationToken);

    /// <summary>Revokes an API key (owner session only); it stops working at once.</summary>
    public Task<ApiKey> RevokeApiKeyAsync(Guid id, CancellationToken cancellationToken = default) =>
        Send(HttpMethod.Delete, $"/api/gym/api-keys/{id}", null, GymwireJsonContext.Default.ApiKey, cancellationToken);

    /// <summary>Lists webhook subscriptions.</summary>
    public async Task<IReadOnlyList<Webhook>> ListWebhooksAsync(CancellationToken cancellationToken = default) =>
        (await Send(HttpMethod.Get, "/api/gym/webhooks", null, GymwireJsonContext.Default.WebhookList, cancellationToken)).Webhooks;

    /// <summary>Creates a webhook subscription; the result holds its signing secret, this once.</summary>
    public Task<CreatedWebhook> CreateWebhookAsync(CreateWebhook request, CancellationToken cancellationToken = default) =>
        Send(HttpMethod.Post, "/api/gym/webhooks", Body(request, GymwireJsonContext.Default.CreateWebhook), GymwireJsonContext.Default.CreatedWebhook, cancellationToken);

    /// <summary>Changes a subscription's URL, events or active state.</summary>
    public Task<Webhook> UpdateWebhookAsync(string id, UpdateWebhook request, CancellationToken cancellationToken = default) =>
        Send(HttpMethod.Patch, $"/api/gym/webhooks/{Uri.EscapeDataString(id)}", Body(request, GymwireJsonContext.Default.UpdateWebhook), GymwireJsonContext.Default.Webhook, cancellationToken);

    /// <summary>Deactivates a subscription.</summary>
    public Task DeleteWebhookAsync(string id, CancellationToken cancellationToken = default) =>
        Send(HttpMethod.Delete, $"/api/gym/webhooks/{Uri.EscapeDataString(id)}", null, GymwireJsonContext.Default.JsonElement, cancellationToken);

    private async Task<IReadOnlyList<T>> Trigger<T>(string type, JsonTypeInfo<List<T>> items, CancellationToken ct) =>
        await Send(HttpMethod.Get, $"/api/zapier/triggers?type={type}", null, items, ct).ConfigureAwait(false);

    private Task<TResult> Action<TBody, TResult>(string type, TBody body, JsonTypeInfo<TBody> bodyInfo, JsonTypeInfo<TResult> resultInfo, string? idempotencyKey, CancellationToken ct) =>
        Send(HttpMethod.Post, $"/api/zapier/actions?type={type}", Body(body, bodyInfo), resultInfo, ct, idempotencyKey);

    private static JsonContent Body<T>(T body, JsonTypeInfo<T> info)
    {
        ArgumentNullException.ThrowIfNull(body);
        return JsonContent.Create(body, info);
    }

    private async Task<T> Send<T>(HttpMethod method, string path, HttpContent? content, JsonTypeInfo<T> resultInfo, CancellationToken ct, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = _authorization;
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }
        request.Content = content;
        using var response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw await ErrorAsync(response, ct).ConfigureAwait(false);
        }
        if (response.StatusCode == HttpStatusCode.NoContent || response.Content.Headers.ContentLength == 0)
        {
            return default!;
        }
        return (await response.Content.ReadFromJsonAsync(resultInfo, ct).ConfigureAwait(false))!;
    }

    private static async Task<GymwireApiException> ErrorAsync(HttpResponseMessage response, CancellationToken ct)
    {
        string message;
        try
        {
            message = (await response.Content.ReadFromJsonAsync(GymwireJsonContext.Default.ErrorBody, ct).ConfigureAwait(false))?.Error ?? response.ReasonPhrase ?? "Error";
        }
        catch (JsonException)
        {
            message = response.ReasonPhrase ?? "Error";
        }
        var retryAfter = response.Headers.RetryAfter?.Delta;
        return new GymwireApiException(response.StatusCode, message, retryAfter);
    }
}
