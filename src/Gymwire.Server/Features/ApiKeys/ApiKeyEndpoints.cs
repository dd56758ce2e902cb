using System.CommandLine;

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
        group.MapPost("/", Create).RequireRateLimiting(RateLimitPolicies.Mutations);
        // Never rate limited: revoking a leaked key must work however many other destructive calls came before.
        group.MapDelete("/{id:guid}", Revoke).WithDescription(
            "Revokes the key at once and deactivates the webhook subscriptions it created (their `disabled_reason` says so). " +
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

    /// <summary><c>gymwire api-keys create|revoke</c>, for headless set-up and scripts.</summary>
    public static Command CliCommand(string[] args)
    {
        var gym = new Option<Guid>("--gym") { Description = "The gym's id.", Required = true };
        var name = new Option<string>("--name") { Description = "Display name.", DefaultValueFactory = _ => ApiKeyService.DefaultName };
        var scopes = new Option<string>("--scopes") { Description = "Comma-separated: read, write.", DefaultValueFactory = _ => Scopes.Read };
        var expires = new Option<DateTime?>("--expires-at") { Description = "Optional expiry (ISO-8601, UTC)." };
        var create = new Command("create", "Create an API key; prints it once.") { gym, name, scopes, expires };
        create.SetAction((parse, ct) => GymwireCli.AdminAsync(args, async (services, ct2) =>
        {
            var requested = parse.GetValue(scopes)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var expiry = parse.GetValue(expires) is { } e ? DateTime.SpecifyKind(e.ToUniversalTime(), DateTimeKind.Utc) : (DateTime?)null;
            var (created, error) = await services.GetRequiredService<ApiKeyService>()
                .CreateAsync(parse.GetValue(gym), parse.GetValue(name), requested, expiry, ct2);
            return created is null ? GymwireCli.Fail(error!) : GymwireCli.Ok(created);
        }, ct));

        var id = new Option<Guid>("--id") { Description = "The key's id.", Required = true };
        var revoke = new Command("revoke", "Revoke an API key; it stops working at once.") { gym, id };
        revoke.SetAction((parse, ct) => GymwireCli.AdminAsync(args, async (services, ct2) =>
        {
            var revoked = await services.GetRequiredService<ApiKeyService>().RevokeAsync(parse.GetValue(gym), parse.GetValue(id), ct2);
            return revoked is null ? GymwireCli.Fail("API key not found") : GymwireCli.Ok(revoked);
        }, ct));

        create.TreatUnmatchedTokensAsErrors = false;
        revoke.TreatUnmatchedTokensAsErrors = false;
        return new Command("api-keys", "Manage API keys.") { create, revoke };
    }
}
