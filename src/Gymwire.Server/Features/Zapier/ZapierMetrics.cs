using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Http.Metadata;

namespace Gymwire.Features.Zapier;

/// <summary>Trigger polls and actions by type and HTTP status, and trigger cache lookups (meter <c>Gymwire.Zapier</c>).</summary>
public sealed class ZapierMetrics
{
    public const string MeterName = "Gymwire.Zapier";
    public const string TypeTag = "gymwire.zapier.type";
    public const string OutcomeTag = "gymwire.outcome";

    /// <summary>The <see cref="TriggerCache"/> lookup outcomes: served from memory; nothing kept; kept but changed since; cache unusable now.</summary>
    public const string CacheHit = "hit", CacheMiss = "miss", CacheStale = "stale", CacheBypass = "bypass";

    private readonly Counter<long> _polls;
    private readonly Counter<long> _actions;
    private readonly Counter<long> _cacheLookups;

    public ZapierMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _polls = meter.CreateCounter<long>("gymwire.zapier.trigger.polls", "{poll}", "Polls of the Zapier triggers, by trigger type and HTTP status code.");
        _actions = meter.CreateCounter<long>("gymwire.zapier.actions", "{action}", "Zapier actions run, by action type and HTTP status code.");
        _cacheLookups = meter.CreateCounter<long>("gymwire.zapier.trigger_cache.lookups", "{lookup}",
            "Newest-first trigger polls looked up in the trigger cache, by trigger type and outcome (hit, miss, stale, bypass).");
    }

    /// <summary>Called only with a known trigger type (the poll validated it) and one of the Cache* outcomes.</summary>
    public void CacheLookup(string type, string outcome)
    {
        if (_cacheLookups.Enabled)
        {
            _cacheLookups.Add(1, new KeyValuePair<string, object?>(TypeTag, type), new KeyValuePair<string, object?>(OutcomeTag, outcome));
        }
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
