using Gymwire.Features.Members;

namespace Gymwire.Features.Contracts;

public sealed record ContractDto(Guid Id, string UserId, string Title, DateTime SignedAt);
public sealed record ContractList(IReadOnlyList<ContractDto> Contracts);
public sealed record SignContractRequest(string? UserId, string? Title);

/// <summary>Membership contracts (<c>contract.signed</c>).</summary>
public static class ContractEndpoints
{
    private static readonly GymCollection<Contract, ContractDto, ContractList> Rows = new(
        c => c.SignedAt, c => new ContractDto(c.Id, c.UserId, c.Title, c.SignedAt), items => new ContractList(items), "Contract not found");

    public static IEndpointRouteBuilder MapContracts(this IEndpointRouteBuilder app)
    {
        app.MapListGetCreate("/api/gym/contracts", "Contracts", Rows.List, Rows.Get, Sign);
        return app;
    }

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
        return TypedResults.Created($"/api/gym/contracts/{contract.Id}", Rows.Map(contract));
    }
}
