namespace Gymwire.Features.Sms;

public sealed record SmsDto(Guid Id, string Phone, string Message, string Status, string? ProviderMessageId, string? Error, DateTime CreatedAt, DateTime? SentAt);
public sealed record SmsList(IReadOnlyList<SmsDto> Messages);

/// <summary>The body of the <c>send_sms</c> action.</summary>
public sealed record SendSmsRequest(string? Phone, string? Message);

/// <summary>The outbound SMS queue: what <c>send_sms</c> queued and what became of it.</summary>
public static class SmsEndpoints
{
    public static IEndpointRouteBuilder MapSms(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/gym/sms").WithTags("SMS");
        group.MapGet("/", List).RequireAuthorization(Policies.Read);
        group.MapPost("/{id:guid}/retry", Retry).RequireAuthorization(Policies.Write).RequireRateLimiting(RateLimitPolicies.Mutations)
            .WithSummary("Queue a failed message again (for example one interrupted mid-send, after checking the provider did not send it)");
        return app;
    }

    internal static Task<Results<Ok<SmsList>, BadRequest<ErrorResponse>>> List(
        ClaimsPrincipal user, GymwireDbContext db, int? limit, int? offset, string? status, CancellationToken ct) =>
        db.SmsMessages.ListInGymAsync(user.GetGymId(), limit, offset, m => m.CreatedAt, SmsService.ToDto, items => new SmsList(items), ct,
            new("status", "statuses", status, SmsStatuses.All, m => m.Status == status));

    internal static async Task<Results<Ok<SmsDto>, NotFound<ErrorResponse>, Conflict<ErrorResponse>>> Retry(
        Guid id, ClaimsPrincipal user, GymwireDbContext db, SmsSignal signal, CancellationToken ct)
    {
        var message = await db.SmsMessages.FindInGymAsync(id, user.GetGymId(), ct);
        if (message is null)
        {
            return ApiErrors.NotFound("SMS message not found");
        }
        if (message.Status != SmsStatuses.Failed)
        {
            return ApiErrors.Conflict($"Only failed messages can be retried; this one is {message.Status}");
        }
        // A deliberate owner decision: the attempt counter starts again; the last error stays until the next attempt.
        message.Status = SmsStatuses.Queued;
        message.Attempts = 0;
        message.NextAttemptAt = null;
        await db.SaveChangesAsync(ct);
        signal.Notify();
        return TypedResults.Ok(SmsService.Map(message));
    }
}
