namespace Gymwire.Features.ApiKeys;

public sealed record ApiKeyList(IReadOnlyList<ApiKeyDto> Keys);

public sealed record CreateApiKeyRequest(string? Name = null, string?[]? Scopes = null, DateTime? ExpiresAt = null);

/// <summary>API-key management: owner sessions only. A key can never create, list or revoke keys.</summary>
public static class ApiKeyEndpoints
{
    public static IEndpointRouteBuilder MapApiKeys(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/gym/api-keys").WithTags("API keys").RequireAuthorization(Policies.Owner);
        group.MapGet("/", List);
        group.MapGet("/{id:guid}", Get);
        group.MapPost("/", Create).RequireRateLimiting(RateLimitPolicies.Mutations).WithNoStore();
        // Never rate limited: revoking a leaked key must work however many other destructive calls came before.
        group.MapDelete("/{id:guid}", Revoke).WithDescription(
            "Revokes the key at once and deactivates the webhook subscriptions it created (their `disabled_reason` says so; " +
            "for a key that has expired, those not changed since it expired). " +
            "Never rate limited: revoking a leaked key always works.");
        return app;
    }

    internal static async Task<Ok<ApiKeyList>> List(ClaimsPrincipal user, ApiKeyService keys, CancellationToken ct) =>
        TypedResults.Ok(new ApiKeyList(await keys.ListAsync(user.GetGymId(), ct)));

    internal static async Task<Results<Ok<ApiKeyDto>, NotFound<ErrorResponse>>> Get(Guid id, ClaimsPrincipal user, ApiKeyService keys, CancellationToken ct)
    {
        var key = await keys.GetAsync(user.GetGymId(), id, ct);
        return key is null ? ApiErrors.NotFound("API key not found") : TypedResults.Ok(key);
    }

    internal static async Task<Results<Created<CreatedApiKeyDto>, BadRequest<ErrorResponse>>> Create(
        CreateApiKeyRequest request, ClaimsPrincipal user, ApiKeyService keys, CancellationToken ct)
    {
        var (created, error) = await keys.CreateAsync(user.GetGymId(), request.Name, request.Scopes, request.ExpiresAt, ct);
        return created is null ? ApiErrors.BadRequest(error!) : TypedResults.Created($"/api/gym/api-keys/{created.Id}", created);
    }

    internal static async Task<Results<Ok<ApiKeyDto>, NotFound<ErrorResponse>>> Revoke(Guid id, ClaimsPrincipal user, ApiKeyService keys, CancellationToken ct)
    {
        var revoked = await keys.RevokeAsync(user.GetGymId(), id, ct);
        return revoked is null ? ApiErrors.NotFound("API key not found") : TypedResults.Ok(revoked);
    }
}
