using System.Diagnostics.Metrics;
using Gymwire.Infrastructure.Telemetry;

namespace Gymwire.Features.ApiKeys;

/// <summary>API-key authentications by outcome (meter <c>Gymwire.ApiKeys</c>).</summary>
public sealed class ApiKeyMetrics(IMeterFactory meters) : OneCounterMetrics(meters, MeterName, GymwireInstruments.OutcomeTag,
    name: "gymwire.api_key.authentications", unit: "{authentication}",
    description: "Requests that presented an API key, by outcome (success, malformed, unknown, revoked, expired).")
{
    public const string MeterName = "Gymwire.ApiKeys";

    /// <summary>The outcomes: accepted, or why not.</summary>
    public static class Outcomes
    {
        public const string Success = "success";
        public const string Malformed = "malformed";
        public const string Unknown = "unknown";
        public const string Revoked = "revoked";
        public const string Expired = "expired";
    }

    public void Authenticated(string outcome) => Count(outcome);
}
