using System.Diagnostics;
using Gymwire.Features.Events;

namespace Gymwire.Tests.Telemetry;

/// <summary>What an outbox event keeps of the trace that wrote it (<see cref="EventTrace"/>), and how it is read back.</summary>
public sealed class EventTraceTests : IDisposable
{
    // Not "Gymwire.*": the test servers' tracer providers listen to those, and would export these spans.
    private readonly ActivitySource _sampled = new("EventTraceTests.Sampled");
    private readonly ActivitySource _unsampled = new("EventTraceTests.Unsampled");
    private readonly ActivityListener _listener = new()
    {
        ShouldListenTo = s => s.Name.StartsWith("EventTraceTests.", StringComparison.Ordinal),
        Sample = (ref ActivityCreationOptions<ActivityContext> o) =>
            o.Source.Name.EndsWith("Unsampled", StringComparison.Ordinal) ? ActivitySamplingResult.PropagationData : ActivitySamplingResult.AllDataAndRecorded,
    };

    public EventTraceTests()
    {
        ActivitySource.AddActivityListener(_listener);
        Activity.Current = null;
    }

    public void Dispose()
    {
        _listener.Dispose();
        _sampled.Dispose();
        _unsampled.Dispose();
    }

    [Fact]
    public void A_recorded_span_is_kept_with_its_tracestate_and_read_back_as_a_remote_context_to_link_to()
    {
        using var span = _sampled.StartActivity("create_lead")!;
        span.TraceStateString = "vendor=abc,other=1";

        var stored = EventTrace.Current();

        Assert.Equal(span.Id + " vendor=abc,other=1", stored);
        var context = EventTrace.Parse(stored)!.Value;
        Assert.True(context.TraceFlags.HasFlag(ActivityTraceFlags.Recorded));
        Assert.Equal((span.TraceId, span.SpanId, span.ActivityTraceFlags, "vendor=abc,other=1", true),
            (context.TraceId, context.SpanId, context.TraceFlags, context.TraceState, context.IsRemote));
    }

    [Fact]
    public void Nothing_is_kept_outside_a_span_or_in_one_that_is_not_recorded()
    {
        Assert.Null(EventTrace.Current());
        using var span = _unsampled.StartActivity("create_lead")!;
        Assert.False(span.Recorded);
        Assert.Null(EventTrace.Current());
    }

    [Fact]
    public void A_tracestate_too_long_or_with_control_characters_is_left_out_and_the_traceparent_kept()
    {
        using var span = _sampled.StartActivity("create_lead")!;
        foreach (var state in new[] { "v=" + new string('x', EventTrace.MaxTraceState), "v=a\nb", "v=a\0" })
        {
            span.TraceStateString = state;
            Assert.Equal(span.Id, EventTrace.Current());
        }
        span.TraceStateString = "v=" + new string('x', EventTrace.MaxTraceState - 2);
        Assert.Equal(EventTrace.MaxLength, EventTrace.Current()!.Length);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("not a traceparent")]
    [InlineData("00-00000000000000000000000000000000-0000000000000000-01")]
    public void Stored_text_that_is_not_a_trace_context_links_to_nothing(string? stored) => Assert.Null(EventTrace.Parse(stored));
}
