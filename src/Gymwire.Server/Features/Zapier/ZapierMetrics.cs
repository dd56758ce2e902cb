using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Http.Metadata;

namespace Gymwire.Features.Zapier;

/// <summary>Trigger polls and actions by type and HTTP status (meter <c>Gymwire.Zapier</c>).</summary>
public sealed class ZapierMetrics
{
    public const string MeterName = "Gymwire.Zapier";
    public const string TypeTag = "gymwire.zapier.type";

    private readonly Counter<long> _polls;
    private readonly Counter<long> _actions;

    public ZapierMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _polls = meter.CreateCounter<long>("gymwire.zapier.trigger.polls", "{poll}", "Polls of the Zapier triggers, by trigger type and HTTP status code.");
        _actions = meter.CreateCounter<long>("gymwire.zapier.actions", "{action}", "Zapier actions run, by action type and HTTP status code.");
    }

    public void Poll(string? type, int status)
    {
        if (_polls.Enabled)
        {
            _polls.Add(1, Tags(type, ZapierTriggers.Types, status));
        }
    }

    public void Action(string? type, int status)
    {
        if (_actions.Enabled)
        {
            _actions.Add(1, Tags(type, ZapierActions.Types, status));
        }
    }

    // The type comes from the query string: anything outside the known list is "other", so a client cannot add series.
    private static TagList Tags(string? type, string[] known, int status) => new()
    {
        { TypeTag, type is not null && known.Contains(type) ? type : "other" },
        { "http.response.status_code", status },
    };

    /// <summary>Counts each call of the endpoint with the status its handler answered (a 500 when it threw).</summary>
    internal static Func<EndpointFilterInvocationContext, EndpointFilterDelegate, ValueTask<object?>> Counting(bool polls) => async (context, next) =>
    {
        var http = context.HttpContext;
        var metrics = http.RequestServices.GetRequiredService<ZapierMetrics>();
        string? type = http.Request.Query["type"];
        var status = StatusCodes.Status500InternalServerError;
        try
        {
            var result = await next(context);
            status = StatusOf(result, http);
            return result;
        }
        finally
        {
            if (polls)
            {
                metrics.Poll(type, status);
            }
            else
            {
                metrics.Action(type, status);
            }
        }
    };

    private static int StatusOf(object? result, HttpContext http)
    {
        while (result is INestedHttpResult nested)
        {
            result = nested.Result;
        }
        return result is IStatusCodeHttpResult { StatusCode: { } code } ? code : http.Response.StatusCode;
    }
}
