using System.Diagnostics.Metrics;
using Gymwire.Infrastructure.Telemetry;

namespace Gymwire.Features.ApiKeys;

/// <summary>API-key authentications by outcome (meter <c>Gymwire.ApiKeys</c>).</summary>
public sealed class ApiKeyMetrics
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

    private readonly Counter<long> _authentications;

    public ApiKeyMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _authentications = meter.CreateCounter<long>("gymwire.api_key.authentications", "{authentication}",
            "Requests that presented an API key, by outcome (success, malformed, unknown, revoked, expired).");
    }

    public void Authenticated(string outcome) => _authentications.Add(1, new KeyValuePair<string, object?>(GymwireInstruments.OutcomeTag, outcome));
}
