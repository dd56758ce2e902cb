using System.Diagnostics;

namespace Gymwire.Features.Events;

/// <summary>
/// The trace context an outbox event keeps of the traced operation that wrote it (<see cref="OutboxEvent.TraceContext"/>),
/// so that the spans of its delivery attempts, which run later in traces of their own, can link back to it. Only the
/// W3C <c>traceparent</c> and <c>tracestate</c> are kept, nothing else of the request (no baggage, no headers).
/// </summary>
public static class EventTrace
{
    /// <summary>A longer <c>tracestate</c> (sent by a client) is not kept; W3C asks propagators to carry at least 512 characters.</summary>
    public const int MaxTraceState = 512;

    /// <summary>The column's length: a version-00 <c>traceparent</c> (55 characters), a space, the <c>tracestate</c>.</summary>
    public const int MaxLength = 55 + 1 + MaxTraceState;

    /// <summary>
    /// The current activity's context as stored: <c>traceparent</c>, then a space and <c>tracestate</c> when there is one.
    /// Null unless a span is being recorded here: ASP.NET Core makes an activity for every request even with tracing
    /// off, and a link to a span nobody recorded leads nowhere.
    /// </summary>
    public static string? Current()
    {
        if (Activity.Current is not { Recorded: true, IdFormat: ActivityIdFormat.W3C } activity || !activity.Source.HasListeners()
            || activity.Id is not { Length: 55 } parent)
        {
            return null;
        }
        var state = activity.TraceStateString;
        return string.IsNullOrEmpty(state) || state.Length > MaxTraceState || state.Any(char.IsControl) ? parent : parent + " " + state;
    }

    /// <summary>The stored context (<see cref="Current"/>'s format) as a remote context to link to; null when there is none or it does not parse.</summary>
    public static ActivityContext? Parse(string? stored)
    {
        if (string.IsNullOrEmpty(stored))
        {
            return null;
        }
        var space = stored.IndexOf(' ', StringComparison.Ordinal);
        var parent = space < 0 ? stored : stored[..space];
        var state = space < 0 ? null : stored[(space + 1)..];
        return ActivityContext.TryParse(parent, state, isRemote: true, out var context) ? context : null;
    }
}
