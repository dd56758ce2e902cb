using Gymwire.Infrastructure;
using Gymwire.Infrastructure.Auth;

namespace Gymwire.Features.Zapier;

/// <summary>The Zapier-style API: polling triggers (<c>read</c>) and actions (<c>write</c>), each with its documented rate limit.</summary>
public static class ZapierEndpoints
{
    public static IEndpointRouteBuilder MapZapier(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/zapier").WithTags("Zapier");
        group.MapGet("/triggers", ZapierTriggers.Poll).RequireAuthorization(Policies.Read).RequireRateLimiting(RateLimitPolicies.Triggers)
            .AddEndpointFilter(ZapierMetrics.Counting(polls: true));
        group.MapPost("/actions", ZapierActions.Run).RequireAuthorization(Policies.Write).RequireRateLimiting(RateLimitPolicies.Actions)
            .AddEndpointFilter(ZapierMetrics.Counting(polls: false));
        return app;
    }
}
