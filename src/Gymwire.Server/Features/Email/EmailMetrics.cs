using System.Diagnostics.Metrics;
using Gymwire.Infrastructure.Telemetry;

namespace Gymwire.Features.Email;

/// <summary>Emails sent over SMTP by outcome (meter <c>Gymwire.Email</c>).</summary>
public sealed class EmailMetrics
{
    public const string MeterName = "Gymwire.Email";

    public static class Outcomes
    {
        public const string Sent = "sent";
        public const string Failed = "failed";
        public const string NotConfigured = "not_configured";
    }

    private readonly Counter<long> _sends;

    public EmailMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _sends = meter.CreateCounter<long>("gymwire.email.sends", "{message}", "Emails handed to the SMTP server, by outcome (sent, failed, not_configured).");
    }

    public void Sent(string outcome) => _sends.Add(1, new KeyValuePair<string, object?>(GymwireInstruments.OutcomeTag, outcome));
}
