using System.Diagnostics.Metrics;
using Gymwire.Infrastructure.Telemetry;

namespace Gymwire.Features.Sms;

/// <summary>SMS send attempts and delivery outcomes by outcome (meter <c>Gymwire.Sms</c>).</summary>
public sealed class SmsMetrics(IMeterFactory meters) : OneCounterMetrics(meters, MeterName, GymwireInstruments.OutcomeTag,
    name: "gymwire.sms.sends", unit: "{attempt}",
    description: "Attempts to send an SMS through the provider, by outcome (sent, retrying, failed).")
{
    public const string MeterName = "Gymwire.Sms";

    private readonly Counter<long> _deliveries = meters.Create(MeterName).CreateCounter<long>("gymwire.sms.deliveries", "{message}",
        "Sent messages whose delivery the provider reported, by outcome (delivered, undelivered).");

    /// <summary>sent; retrying (a transient failure, queued again); failed (given up, for the owner to review).</summary>
    public static class Outcomes
    {
        public const string Sent = "sent";
        public const string Retrying = "retrying";
        public const string Failed = "failed";
    }

    public void Sent(string outcome) => Count(outcome);

    /// <summary>A message became <c>delivered</c> or <c>undelivered</c> (counted once per change, not per callback).</summary>
    public void Delivery(string status) => _deliveries.Add(1, new KeyValuePair<string, object?>(GymwireInstruments.OutcomeTag, status));
}
