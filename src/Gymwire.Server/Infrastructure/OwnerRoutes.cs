namespace Gymwire.Infrastructure;

/// <summary>The routes most owner-API collections share, mapped one way so that each collection is guarded alike.</summary>
public static class OwnerRoutes
{
    /// <summary>
    /// <c>GET /</c> (a page), <c>GET /{id}</c> and <c>POST /</c> under <paramref name="prefix"/>: reads need the read scope,
    /// a create the write scope and the mutations rate limit. Returns the group for the collection's other routes.
    /// </summary>
    public static RouteGroupBuilder MapListGetCreate(this IEndpointRouteBuilder app, string prefix, string tag,
        Delegate list, Delegate get, Delegate create)
    {
        var group = app.MapGroup(prefix).WithTags(tag);
        group.MapGet("/", list).RequireAuthorization(Policies.Read);
        group.MapGet("/{id:guid}", get).RequireAuthorization(Policies.Read);
        group.MapPost("/", create).RequireAuthorization(Policies.Write).RequireRateLimiting(RateLimitPolicies.Mutations);
        return group;
    }
}
