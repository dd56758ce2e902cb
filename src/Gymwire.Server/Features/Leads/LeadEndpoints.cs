using System.Security.Claims;
using Gymwire.Data;
using Gymwire.Features.Events;
using Gymwire.Infrastructure;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Features.Leads;

public sealed record LeadDto(Guid Id, string FirstName, string? LastName, string? Email, string? Phone, string Source, DateTime CreatedAt);
public sealed record LeadList(IReadOnlyList<LeadDto> Leads);

/// <summary>The body of <c>create_lead</c> and of <c>POST /api/gym/leads</c>.</summary>
public sealed record CreateLeadRequest(string? FirstName, string? LastName = null, string? Email = null, string? Phone = null, string? Source = null);

/// <summary>Leads in the gym's CRM (<c>lead.created</c>).</summary>
public static class LeadEndpoints
{
    public static IEndpointRouteBuilder MapLeads(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/gym/leads").WithTags("Leads");
        group.MapGet("/", List).RequireAuthorization(Policies.Read);
        group.MapGet("/{id:guid}", Get).RequireAuthorization(Policies.Read);
        group.MapPost("/", Create).RequireAuthorization(Policies.Write).RequireRateLimiting(RateLimitPolicies.Mutations);
        return app;
    }

    internal static Task<Results<Ok<LeadList>, BadRequest<ErrorResponse>>> List(
        ClaimsPrincipal user, GymwireDbContext db, int? limit, int? offset, CancellationToken ct) =>
        db.Leads.ListInGymAsync(user.GetGymId(), limit, offset, l => l.CreatedAt, LeadService.ToDto, items => new LeadList(items), ct);

    internal static Task<Results<Ok<LeadDto>, NotFound<ErrorResponse>>> Get(Guid id, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct) =>
        db.Leads.GetInGymAsync(id, user.GetGymId(), LeadService.Map, "Lead not found", ct);

    internal static async Task<Results<Created<LeadDto>, BadRequest<ErrorResponse>>> Create(
        CreateLeadRequest request, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (LeadService.Validate(request) is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        var lead = LeadService.AddLead(db, user.GetGymId(), request, "manual", clock.GetUtcNow().UtcDateTime);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/api/gym/leads/{lead.Id}", LeadService.Map(lead));
    }
}
