using System.ComponentModel.DataAnnotations;

namespace Gymwire.Features.Stripe;

/// <summary>The <c>Stripe</c> configuration section. Endpoint secrets are per gym (set by the owner), not here.</summary>
public sealed class StripeOptions
{
    public const string Section = "Stripe";

    /// <summary>How old a <c>Stripe-Signature</c> timestamp may be (replay protection). Stripe's libraries default to 300 s.</summary>
    [Range(typeof(TimeSpan), "00:00:10", "1.00:00:00", ErrorMessage = "Stripe:SignatureTolerance must be between 10 seconds and 1 day.")]
    public TimeSpan SignatureTolerance { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// On <c>POST /api/integrations/stripe/webhook</c> without <c>?gym=</c>, try every gym's secret (fine for a
    /// single-gym or small install; large multi-gym installs should give each gym its own URL and switch this off).
    /// </summary>
    public bool MatchGymBySecret { get; set; } = true;
}
