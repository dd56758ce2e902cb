using Gymwire.Features.Dashboard.Integrations;

namespace Gymwire.Features.Stripe;

/// <summary>
/// The Payments tile: Connected once the owner set a Stripe secret; Error when the stored secret does not decrypt, or
/// the latest webhook was rejected and none has verified with the secret yet or for a day.
/// </summary>
public sealed class StripeIntegration(GymwireDbContext db, StripeSecrets secrets) : IntegrationTile(
    "payments", "Payments", "Membership payments, failures, refunds and subscriptions from Stripe.", 10,
    guidance:
        "In Stripe's dashboard (Developers → Webhooks) add an endpoint with your gym's URL, /api/integrations/stripe/webhook/{your gym id}, " +
        $"for {string.Join(", ", StripeEventMapper.SubscribedTypes[..^1])} and {StripeEventMapper.SubscribedTypes[^1]} " +
        "(invoice_payment.paid is what ties a refund to its invoice from Stripe API version 2025-03-31.basil). " +
        "Then give Gymwire the endpoint's signing secret (whsec_…) with PUT /api/gym/integrations/stripe.")
{
    /// <summary>How long after the last verified event rejected posts make the tile an error.</summary>
    public static readonly TimeSpan RejectedForAnError = TimeSpan.FromDays(1);

    public override async Task<IntegrationStatus> GetStatusAsync(Guid gymId, CancellationToken ct)
    {
        var account = await db.StripeAccounts.AsNoTracking().FirstOrDefaultAsync(a => a.GymId == gymId, ct);
        if (account is null)
        {
            return IntegrationStatus.NotConnected("No Stripe webhook secret is set for this gym; payments are only recorded through the API.");
        }
        if (secrets.Unprotect(gymId, account.ProtectedEndpointSecret) is null)
        {
            return IntegrationStatus.Error(StripeSecrets.CannotDecrypt + ".");
        }
        var zone = await GymTimeZones.OfGymAsync(db, gymId, ct);
        // Anyone who knows the gym's URL can post a bad signature, so a rejection is an error only while no event has
        // verified with this secret (a wrong secret), or when posts are still rejected a day after the last one verified
        // (a secret rolled in Stripe and not here). Otherwise a rejection is shown beside the status.
        var verified = account.LastEventAt >= account.ConfiguredAt;
        var rejectedLast = account.LastFailureAt is { } failedAt && failedAt >= account.ConfiguredAt
            && (account.LastEventAt is null || account.LastEventAt < failedAt);
        var rejection = rejectedLast ? $"{account.LastFailure?.TrimEnd('.')} ({GymTimeZones.Minutes(account.LastFailureAt!.Value, zone)})" : null;
        if (rejectedLast && !verified)
        {
            return IntegrationStatus.Error(rejection!);
        }
        if (rejectedLast && account.LastFailureAt - account.LastEventAt > RejectedForAnError)
        {
            return IntegrationStatus.Error($"{rejection}, and no event has verified since {GymTimeZones.Minutes(account.LastEventAt!.Value, zone)}. " +
                "If Stripe shows failed deliveries, set the endpoint's current signing secret.");
        }
        var unknown = await db.StripeEvents.CountAsync(e => e.GymId == gymId && e.Outcome == StripeOutcomes.UnknownMember, ct);
        var last = account.LastEventAt is { } at ? $"last event {GymTimeZones.Minutes(at, zone)}" : "no events received yet";
        var reason = $"Stripe connected (secret …{account.SecretHint}); {last}.";
        if (rejection is not null)
        {
            reason += $" {rejection}. If Stripe shows failed deliveries since then, set the endpoint's current signing secret.";
        }
        return IntegrationStatus.Connected(unknown == 0
            ? reason
            : $"{reason} {unknown} event(s) matched no member: the Payments page lists the latest events and what became of each.");
    }
}
