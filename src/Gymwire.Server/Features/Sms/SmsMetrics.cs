using System.Diagnostics.Metrics;
using Gymwire.Infrastructure.Telemetry;

namespace Gymwire.Features.Sms;

/// <summary>SMS send attempts by outcome (meter <c>Gymwire.Sms</c>).</summary>
public sealed class SmsMetrics
{
    public const string MeterName = "Gymwire.Sms";

    /// <summary>sent; retrying (a transient failure, queued again); failed (given up, for the owner to review).</summary>
    public static class Outcomes
    {
        public const string Sent = "sent";
        public const string Retrying = "retrying";
        public const string Failed = "failed";
    }

    private readonly Counter<long> _sends;

    public SmsMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _sends = meter.CreateCounter<long>("gymwire.sms.sends", "{attempt}", "Attempts to send an SMS through the provider, by outcome (sent, retrying, failed).");
    }

    public void Sent(string outcome) => _sends.Add(1, new KeyValuePair<string, object?>(GymwireInstruments.OutcomeTag, outcome));
}
