using System.Linq.Expressions;
using Gymwire.Features.Members;

namespace Gymwire.Features.Contracts;

public sealed record ContractDto(Guid Id, string UserId, string Title, DateTime SignedAt);
public sealed record ContractList(IReadOnlyList<ContractDto> Contracts);
public sealed record SignContractRequest(string? UserId, string? Title);

/// <summary>Membership contracts (<c>contract.signed</c>).</summary>
public static class ContractEndpoints
{
    public static IEndpointRouteBuilder MapContracts(this IEndpointRouteBuilder app)
    {
        app.MapListGetCreate("/api/gym/contracts", "Contracts", List, Get, Sign);
        return app;
    }

    internal static Task<Results<Ok<ContractList>, BadRequest<ErrorResponse>>> List(
        ClaimsPrincipal user, GymwireDbContext db, int? limit, int? offset, CancellationToken ct) =>
        db.Contracts.ListInGymAsync(user.GetGymId(), limit, offset, c => c.SignedAt, ToDto, items => new ContractList(items), ct);

    internal static Task<Results<Ok<ContractDto>, NotFound<ErrorResponse>>> Get(Guid id, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct) =>
        db.Contracts.GetInGymAsync(id, user.GetGymId(), Map, "Contract not found", ct);

    internal static async Task<Results<Created<ContractDto>, BadRequest<ErrorResponse>, NotFound<ErrorResponse>>> Sign(
        SignContractRequest request, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var v = new RequestValidator().Required(request.UserId, "user_id", 100).Required(request.Title, "title");
        if (v.Error is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        var gymId = user.GetGymId();
        if (!await db.IsActiveMemberAsync(gymId, request.UserId!, ct))
        {
            return ApiErrors.NotFound(MemberService.NotAMember(request.UserId));
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var contract = new Contract { Id = Guid.CreateVersion7(now), GymId = gymId, UserId = request.UserId!, Title = request.Title!.Trim(), SignedAt = now };
        db.Contracts.Add(contract);
        db.AddEvent(gymId, EventCatalog.ContractSigned, new { contract_id = contract.Id, user_id = contract.UserId }, now);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/api/gym/contracts/{contract.Id}", Map(contract));
    }

    private static readonly Expression<Func<Contract, ContractDto>> ToDto = c => new ContractDto(c.Id, c.UserId, c.Title, c.SignedAt);

    // The same mapping in memory, for rows already loaded.
    private static readonly Func<Contract, ContractDto> Map = ToDto.Compile();
}
