namespace Gymwire.Infrastructure.Telemetry;

/// <summary>Names shared by Gymwire's meters: one <c>Meter</c> per area, each named <c>Gymwire.&lt;Area&gt;</c>.</summary>
public static class GymwireInstruments
{
    /// <summary>Every Gymwire meter and activity source (a wildcard the OpenTelemetry SDK understands).</summary>
    public const string AllMeters = "Gymwire.*";

    /// <summary>A bounded value for the <c>gymwire.outcome</c> and similar tags.</summary>
    public const string OutcomeTag = "gymwire.outcome";
}
