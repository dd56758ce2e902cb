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
            .WithSummary("Queue a failed or undelivered message again (for example one interrupted mid-send, after checking the provider did not send it)");

        // Twilio signs, so this is anonymous; the signature is the authentication. Anyone can post, so rejected posts
        // are limited per client address.
        var callbacks = app.MapGroup(TwilioStatusCallbacks.Path).WithTags("SMS").AllowAnonymous().RequireRateLimiting(RateLimitPolicies.TwilioCallbacks);
        callbacks.MapPost("/", ReceiveStatus)
            .Produces<ErrorResponse>(StatusCodes.Status403Forbidden)
            .WithSummary("Receive Twilio's status callback for a sent message (form-encoded, signed with X-Twilio-Signature)")
            .WithDescription("Twilio posts here when Auth:PublicUrl is set. A post whose signature does not verify gets 403, whatever the reason, "
                + "and changes nothing. A verified one gets 200 with no body, also for a message Gymwire does not know.");
        return app;
    }

    internal static Task<Results<Ok<SmsList>, BadRequest<ErrorResponse>>> List(
        ClaimsPrincipal user, GymwireDbContext db, int? limit, int? offset, string? status, CancellationToken ct) =>
        db.SmsMessages.ListInGymAsync(user.GetGymId(), limit, offset, m => m.CreatedAt, SmsService.ToDto, items => new SmsList(items), ct,
            new("status", "statuses", status, SmsStatuses.All, m => m.Status == status));

    internal static Task<Results<Ok, BadRequest<ErrorResponse>, JsonHttpResult<ErrorResponse>>> ReceiveStatus(
        HttpRequest request, GymwireDbContext db, SqliteWriteGate gate, TwilioStatusCallbacks callbacks, CancellationToken ct) =>
        callbacks.ReceiveAsync(request, db, gate, ct);

    internal static async Task<Results<Ok<SmsDto>, NotFound<ErrorResponse>, Conflict<ErrorResponse>>> Retry(
        Guid id, ClaimsPrincipal user, GymwireDbContext db, SqliteWriteGate gate, SmsSignal signal, CancellationToken ct)
    {
        var outcome = await SmsService.RetryAsync(db, gate, signal, user.GetGymId(), id, ct);
        return outcome switch
        {
            { Message: { } message } => TypedResults.Ok(SmsService.Map(message)),
            { Failure: SmsRetryFailure.NotFound } => ApiErrors.NotFound(outcome.Error),
            _ => ApiErrors.Conflict(outcome.Error),
        };
    }
}
