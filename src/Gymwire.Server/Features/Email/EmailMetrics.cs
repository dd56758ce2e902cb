using System.Diagnostics.Metrics;
using Gymwire.Infrastructure.Telemetry;

namespace Gymwire.Features.Email;

/// <summary>Emails sent over SMTP by outcome (meter <c>Gymwire.Email</c>).</summary>
public sealed class EmailMetrics(IMeterFactory meters) : OneCounterMetrics(meters, MeterName, GymwireInstruments.OutcomeTag,
    name: "gymwire.email.sends", unit: "{message}",
    description: "Emails handed to the SMTP server, by outcome (sent, failed, not_configured).")
{
    public const string MeterName = "Gymwire.Email";

    public static class Outcomes
    {
        public const string Sent = "sent";
        public const string Failed = "failed";
        public const string NotConfigured = "not_configured";
    }

    public void Sent(string outcome) => Count(outcome);
}
