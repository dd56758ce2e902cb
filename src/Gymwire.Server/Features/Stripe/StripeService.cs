using System.Linq.Expressions;

namespace Gymwire.Features.Stripe;

/// <summary>A gym's Stripe connection and its recorded events, as the API and the dashboard's payments page share them.</summary>
public static class StripeService
{
    /// <summary>Validates and stores (encrypted) a gym's endpoint secret: the API's PUT and the dashboard's form.</summary>
    public static async Task<(StripeAccount? Account, string? Error)> SaveSecretAsync(
        Guid gymId, string? secret, GymwireDbContext db, StripeSecrets secrets, TimeProvider clock, CancellationToken ct)
    {
        var v = new RequestValidator()
            .Required(secret, "endpoint_secret", 200)
            .Check(secret is null || (secret.StartsWith("whsec_", StringComparison.Ordinal) && secret.Length >= 16 && secret.All(c => c > ' ' && c < '\x7f')),
                "'endpoint_secret' must be the webhook endpoint's signing secret from Stripe (it starts with 'whsec_')");
        if (v.Error is { } invalid)
        {
            return (null, invalid);
        }
        var now = clock.GetUtcNow().UtcDateTime;
        for (var tries = 1; ; tries++)
        {
            var account = await db.StripeAccounts.FirstOrDefaultAsync(a => a.GymId == gymId, ct);
            if (account is null)
            {
                account = new StripeAccount { GymId = gymId, ProtectedEndpointSecret = "", SecretHint = "" };
                db.StripeAccounts.Add(account);
            }
            account.ProtectedEndpointSecret = secrets.Protect(gymId, secret!);
            account.SecretHint = StripeSecrets.Hint(secret!);
            account.ConfiguredAt = now;
            account.LastFailure = null;
            account.LastFailureAt = null;
            try
            {
                await db.SaveChangesAsync(ct);
                return (account, null);
            }
            catch (DbUpdateException e) when (tries == 1 && ErrorHandling.IsUniqueViolation(e))
            {
                // Another request saved the gym's first secret meanwhile (two tabs): this one is saved over it.
                db.ChangeTracker.Clear();
            }
        }
    }

    /// <summary>A recorded event as the API and the dashboard's payments page show it, made in the query.</summary>
    public static readonly Expression<Func<StripeEventRecord, StripeEventDto>> ToEventDto =
        e => new StripeEventDto(e.Id, e.StripeEventId, e.Type, e.ReceivedAt, e.Outcome, e.Detail, e.CustomerId, e.Email);
}
