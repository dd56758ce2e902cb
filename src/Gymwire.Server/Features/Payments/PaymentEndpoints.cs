using Gymwire.Features.Members;

namespace Gymwire.Features.Payments;

public sealed record PaymentDto(Guid Id, string UserId, Guid? PlanId, int AmountCents, string Currency, string Status,
    string? FailureReason, DateTime CreatedAt, DateTime? RefundedAt);
public sealed record PaymentList(IReadOnlyList<PaymentDto> Payments);
public sealed record RecordPaymentRequest(string? UserId, int? AmountCents, Guid? PlanId = null, string? Currency = null, string? Status = null, string? FailureReason = null);

/// <summary>Payments: succeed (<c>payment.received</c>), fail (<c>payment.failed</c>), are refunded (<c>payment.refunded</c>).</summary>
public static class PaymentEndpoints
{
    private static readonly string[] RecordableStatuses = [PaymentStatuses.Paid, PaymentStatuses.Failed];

    private static readonly GymCollection<Payment, PaymentDto, PaymentList> Rows = new(
        p => p.CreatedAt, p => new PaymentDto(p.Id, p.UserId, p.PlanId, p.AmountCents, p.Currency, p.Status, p.FailureReason, p.CreatedAt, p.RefundedAt),
        items => new PaymentList(items), "Payment not found");

    public static IEndpointRouteBuilder MapPayments(this IEndpointRouteBuilder app)
    {
        var group = app.MapListGetCreate("/api/gym/payments", "Payments", Rows.List, Rows.Get, Record);
        group.MapPost("/{id:guid}/refund", Refund).RequireAuthorization(Policies.Write).RequireRateLimiting(RateLimitPolicies.Destructive);
        return app;
    }

    internal static async Task<Results<Created<PaymentDto>, BadRequest<ErrorResponse>, NotFound<ErrorResponse>>> Record(
        RecordPaymentRequest request, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var status = request.Status ?? PaymentStatuses.Paid;
        var currency = request.Currency ?? "usd";
        var v = new RequestValidator()
            .Required(request.UserId, "user_id", 100)
            .Check(request.AmountCents is not null, "'amount_cents' is required")
            .Range(request.AmountCents, "amount_cents", 1, 100_000_000)
            .Check(currency.Length == 3 && currency.All(char.IsAsciiLetterLower), "'currency' must be a lowercase ISO 4217 code such as 'usd'")
            .OneOf(status, "status", RecordableStatuses)
            .MaxLength(request.FailureReason, "failure_reason", 500);
        if (v.Error is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        var gymId = user.GetGymId();
        if (!await db.Members.AnyAsync(m => m.GymId == gymId && m.UserId == request.UserId, ct))
        {
            return ApiErrors.NotFound(MemberService.NotAMember(request.UserId));
        }
        if (request.PlanId is { } planId && !await db.MembershipPlans.AnyAsync(p => p.Id == planId && p.GymId == gymId, ct))
        {
            return ApiErrors.NotFound("Plan not found");
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var payment = new Payment
        {
            Id = Guid.CreateVersion7(now), GymId = gymId, UserId = request.UserId!, PlanId = request.PlanId,
            AmountCents = request.AmountCents!.Value, Currency = currency, Status = status,
            FailureReason = status == PaymentStatuses.Failed ? request.FailureReason ?? "unknown" : null, CreatedAt = now, RecordedAt = now,
        };
        PaymentService.AddPayment(db, payment);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/api/gym/payments/{payment.Id}", Rows.Map(payment));
    }

    internal static async Task<Results<Ok<PaymentDto>, NotFound<ErrorResponse>, Conflict<ErrorResponse>>> Refund(
        Guid id, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var payment = await db.Payments.FindInGymAsync(id, user.GetGymId(), ct);
        if (payment is null)
        {
            return ApiErrors.NotFound("Payment not found");
        }
        if (payment.Status != PaymentStatuses.Paid)
        {
            return ApiErrors.Conflict($"Only paid payments can be refunded; this one is {payment.Status}");
        }
        PaymentService.RefundPayment(db, payment, clock.GetUtcNow().UtcDateTime);
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(Rows.Map(payment));
    }
}
