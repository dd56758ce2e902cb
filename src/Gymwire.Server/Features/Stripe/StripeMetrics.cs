using System.Diagnostics.Metrics;
using Gymwire.Infrastructure.Telemetry;

namespace Gymwire.Features.Stripe;

/// <summary>Stripe webhook events received, by outcome (meter <c>Gymwire.Stripe</c>).</summary>
public sealed class StripeMetrics(IMeterFactory meters) : OneCounterMetrics(meters, MeterName, GymwireInstruments.OutcomeTag,
    name: "gymwire.stripe.events", unit: "{event}",
    description: "Stripe webhook calls received, by outcome (rejected, invalid, duplicate, or what the event became: recorded, ignored, unknown_member...).")
{
    public const string MeterName = "Gymwire.Stripe";

    /// <summary>Outcomes besides <see cref="StripeOutcomes"/> (what a verified new event became).</summary>
    public static class Outcomes
    {
        /// <summary>No gym's endpoint secret verifies the signature (or it is missing or malformed).</summary>
        public const string Rejected = "rejected";
        /// <summary>Verified, but without an id or type.</summary>
        public const string Invalid = "invalid";
        /// <summary>An event already received (Stripe retried it).</summary>
        public const string Duplicate = "duplicate";
    }

    public void Received(string outcome) => Count(outcome);
}
