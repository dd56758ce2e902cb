using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Net;
using System.Security.Claims;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Gymwire.Data;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace Gymwire.Infrastructure;

/// <summary>
/// The documented limits, as named policies. Endpoints name theirs with the framework's <c>RequireRateLimiting</c>
/// (which the OpenAPI document reads too); <see cref="RateLimitMiddleware"/> enforces it, not the framework's
/// middleware, whose window limiters admit up to twice the limit around a window's edge and never give a permit back.
/// </summary>
public static class RateLimitPolicies
{
    /// <summary>Zapier triggers: 60 requests/minute per gym.</summary>
    public const string Triggers = "triggers";
    /// <summary>Zapier actions: 30 requests/minute per gym.</summary>
    public const string Actions = "actions";
    /// <summary>Standard mutations: 30 requests/minute per user (owner or API key).</summary>
    public const string Mutations = "mutations";
    /// <summary>
    /// Destructive operations (deletes, cancellations, refunds, secret rotations): 5 per hour per user. Only those that
    /// succeed count. Revoking an API key and disabling a webhook are never limited: stopping a leak must always work.
    /// </summary>
    public const string Destructive = "destructive";
    /// <summary>
    /// Stripe's webhook URLs: 1000 rejected posts/minute per client address. They are anonymous (the signature is
    /// checked in the handler, and the URL without a gym tries every gym's secret), so this bounds what forged posts
    /// can make the server do. Only posts that are not accepted count: Stripe delivers every gym's events from a few
    /// shared addresses, so counting its accepted deliveries would refuse them at a busy server's renewal burst.
    /// </summary>
    public const string StripeWebhooks = "stripe-webhooks";
    /// <summary>
    /// Twilio's SMS status callback URL: 1000 rejected posts/minute per client address, counted as
    /// <see cref="StripeWebhooks"/> are (anonymous, Twilio signs; only posts that are not accepted count).
    /// </summary>
    public const string TwilioCallbacks = "twilio-callbacks";

    /// <summary>The anonymous provider callbacks: counted per client address, and only the posts that are not accepted.</summary>
    public static bool IsProviderCallback(string policy) => policy is StripeWebhooks or TwilioCallbacks;
}

public sealed class RateLimitPolicyOptions
{
    [Range(1, 1_000_000_000, ErrorMessage = "PermitLimit must be between 1 and 1000000000.")]
    public int PermitLimit { get; set; }

    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00", ErrorMessage = "Window must be between 1 second and 1 day.")]
    public TimeSpan Window { get; set; }
}

/// <summary>The <c>RateLimiting</c> configuration section. Defaults are the documented table.</summary>
public sealed class RateLimitingOptions
{
    public const string Section = "RateLimiting";

    /// <summary>Switches every limit off (benchmarks of the bare pipeline only).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Where requests are counted. <c>Shared</c> (the default): on PostgreSQL, in the database, so the limits hold for
    /// every node together (<see cref="PostgresRateLimitStore"/>); on SQLite (one node), in memory. <c>Local</c>: in
    /// each node's memory, so N nodes admit N times each limit.
    /// </summary>
    public RateLimitStoreKind Store { get; set; } = RateLimitStoreKind.Shared;

    [ValidateObjectMembers] public RateLimitPolicyOptions Triggers { get; set; } = new() { PermitLimit = 60, Window = TimeSpan.FromMinutes(1) };
    [ValidateObjectMembers] public RateLimitPolicyOptions Actions { get; set; } = new() { PermitLimit = 30, Window = TimeSpan.FromMinutes(1) };
    [ValidateObjectMembers] public RateLimitPolicyOptions Mutations { get; set; } = new() { PermitLimit = 30, Window = TimeSpan.FromMinutes(1) };
    [ValidateObjectMembers] public RateLimitPolicyOptions Destructive { get; set; } = new() { PermitLimit = 5, Window = TimeSpan.FromHours(1) };
    [ValidateObjectMembers] public RateLimitPolicyOptions StripeWebhooks { get; set; } = new() { PermitLimit = 1000, Window = TimeSpan.FromMinutes(1) };
    [ValidateObjectMembers] public RateLimitPolicyOptions TwilioCallbacks { get; set; } = new() { PermitLimit = 1000, Window = TimeSpan.FromMinutes(1) };
}

public enum RateLimitStoreKind
{
    Shared,
    Local,
}

[OptionsValidator]
public sealed partial class RateLimitingOptionsValidator : IValidateOptions<RateLimitingOptions>;

public static class RateLimitingSetup
{
    public static IServiceCollection AddGymwireRateLimiting(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<RateLimitingOptions>().BindConfiguration(RateLimitingOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<RateLimitingOptions>, RateLimitingOptionsValidator>();
        var options = configuration.GetSection(RateLimitingOptions.Section).Get<RateLimitingOptions>() ?? new RateLimitingOptions();
        var database = configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions();
        if (options.Store == RateLimitStoreKind.Shared && database.ProviderKind == DatabaseProvider.Postgres)
        {
            services.AddSingleton<PostgresRateLimitStore>();
            services.AddSingleton<IRateLimitStore>(sp => sp.GetRequiredService<PostgresRateLimitStore>());
        }
        else
        {
            services.AddSingleton<IRateLimitStore, InMemoryRateLimitStore>();
        }
        services.AddSingleton<RateLimits>();
        services.AddSingleton<RateLimitMetrics>();
        return services;
    }

    /// <summary>After authentication and authorization: limits are per gym or per user, so they need the principal.</summary>
    public static IApplicationBuilder UseGymwireRateLimiting(this IApplicationBuilder app) => app.UseMiddleware<RateLimitMiddleware>();
}

/// <summary>A permit taken from a limit, or the time until one is free.</summary>
public readonly record struct RateLimitDecision(bool Admitted, string Key, long Permit, TimeSpan RetryAfter)
{
    public static readonly RateLimitDecision Unlimited = new(true, "", 0, TimeSpan.Zero);

    /// <summary>Whole seconds, at least 1, as sent in <c>Retry-After</c>.</summary>
    public int RetryAfterSeconds => Math.Max(1, (int)Math.Ceiling(RetryAfter.TotalSeconds));
}

/// <summary>
/// Where admitted requests are counted: this node's memory (<see cref="InMemoryRateLimitStore"/>), or the database for
/// the whole cluster (<see cref="PostgresRateLimitStore"/>).
/// A sliding window: a request is admitted when fewer than <c>limit</c> were admitted under <c>key</c> in the last
/// <c>window</c>, so no interval of one window's length ever admits more than the limit.
/// </summary>
public interface IRateLimitStore
{
    ValueTask<RateLimitDecision> TryAcquireAsync(string key, int limit, TimeSpan window, CancellationToken ct);

    /// <summary>Gives an admitted permit back (the policy does not count how the request ended), as if it had never been taken.</summary>
    ValueTask ReleaseAsync(string key, long permit, CancellationToken ct);
}

/// <summary>
/// <see cref="IRateLimitStore"/> in this process's memory: per key, the times of the requests admitted within the last
/// window (at most the limit of them). Time comes from <see cref="TimeProvider"/>'s monotonic timestamp, so tests move it
/// with the fake clock and a wall-clock step never reopens a window.
/// </summary>
public sealed class InMemoryRateLimitStore(TimeProvider clock) : IRateLimitStore
{
    private static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(5);

    private readonly ConcurrentDictionary<string, Log> _logs = new(StringComparer.Ordinal);
    private readonly long _origin = clock.GetTimestamp();
    private long _lastPermit;
    private long _nextSweepTicks = SweepInterval.Ticks;

    public ValueTask<RateLimitDecision> TryAcquireAsync(string key, int limit, TimeSpan window, CancellationToken ct)
    {
        var now = Now();
        SweepIfDue(now);
        while (true)
        {
            var log = _logs.GetOrAdd(key, _ => new Log());
            lock (log)
            {
                if (log.Removed)
                {
                    // A sweep took this log out of the map after we found it: count in the one that replaces it.
                    continue;
                }
                log.Window = window;
                log.Prune(now - window);
                if (log.Entries.Count < limit)
                {
                    var permit = Interlocked.Increment(ref _lastPermit);
                    log.Entries.Enqueue((now, permit));
                    return ValueTask.FromResult(new RateLimitDecision(true, key, permit, TimeSpan.Zero));
                }
                return ValueTask.FromResult(new RateLimitDecision(false, key, 0, log.Entries.Peek().At + window - now));
            }
        }
    }

    public ValueTask ReleaseAsync(string key, long permit, CancellationToken ct)
    {
        if (_logs.TryGetValue(key, out var log))
        {
            lock (log)
            {
                // The log holds at most the limit: copying it is cheap next to the request that gives the permit back.
                if (log.Entries.Any(e => e.Permit == permit))
                {
                    var kept = log.Entries.Where(e => e.Permit != permit).ToList();
                    log.Entries.Clear();
                    kept.ForEach(log.Entries.Enqueue);
                }
            }
        }
        return ValueTask.CompletedTask;
    }

    private TimeSpan Now() => clock.GetElapsedTime(_origin);

    /// <summary>Drops the logs of keys with nothing admitted within their window, so idle gyms and users cost no memory.</summary>
    private void SweepIfDue(TimeSpan now)
    {
        var due = Interlocked.Read(ref _nextSweepTicks);
        if (now.Ticks < due || Interlocked.CompareExchange(ref _nextSweepTicks, (now + SweepInterval).Ticks, due) != due)
        {
            return;
        }
        foreach (var (key, log) in _logs)
        {
            lock (log)
            {
                log.Prune(now - log.Window);
                if (log.Entries.Count == 0)
                {
                    log.Removed = true;
                    _logs.TryRemove(new KeyValuePair<string, Log>(key, log));
                }
            }
        }
    }

    private sealed class Log
    {
        /// <summary>Oldest first. A queue is one array however many requests a window holds (no object per request).</summary>
        public readonly Queue<(TimeSpan At, long Permit)> Entries = new();
        public TimeSpan Window;
        public bool Removed;

        /// <summary>Forgets what was admitted at or before <paramref name="cutoff"/>: it is a whole window ago.</summary>
        public void Prune(TimeSpan cutoff)
        {
            while (Entries.TryPeek(out var first) && first.At <= cutoff)
            {
                Entries.Dequeue();
            }
        }
    }
}

/// <summary>The documented policies over <see cref="IRateLimitStore"/>: shared by the API's middleware and the dashboard.</summary>
public sealed class RateLimits(IRateLimitStore store, IOptions<RateLimitingOptions> options, RateLimitMetrics metrics)
{
    /// <summary>
    /// Takes a permit of <paramref name="policy"/> for the caller: per gym, per user or per client address, as the policy
    /// counts (<paramref name="client"/> is read only by the policies counted per client address).
    /// </summary>
    public ValueTask<RateLimitDecision> TryAcquireAsync(string policy, ClaimsPrincipal user, IPAddress? client, CancellationToken ct)
    {
        var o = options.Value;
        if (!o.Enabled)
        {
            return ValueTask.FromResult(RateLimitDecision.Unlimited);
        }
        var (limit, key) = policy switch
        {
            RateLimitPolicies.Triggers => (o.Triggers, PerGym(policy, user)),
            RateLimitPolicies.Actions => (o.Actions, PerGym(policy, user)),
            RateLimitPolicies.Mutations => (o.Mutations, PerUser(policy, user)),
            RateLimitPolicies.Destructive => (o.Destructive, PerUser(policy, user)),
            RateLimitPolicies.StripeWebhooks => (o.StripeWebhooks, PerClient(policy, client)),
            RateLimitPolicies.TwilioCallbacks => (o.TwilioCallbacks, PerClient(policy, client)),
            _ => throw new InvalidOperationException($"Unknown rate-limit policy '{policy}'."),
        };
        var pending = store.TryAcquireAsync(key, limit.PermitLimit, limit.Window, ct);
        if (pending.IsCompletedSuccessfully)
        {
            // Read once and handed on as a plain result: a value task's result may be taken only once.
            var decision = pending.Result;
            Count(policy, decision);
            return new ValueTask<RateLimitDecision>(decision);
        }
        return CountAsync(policy, pending);
    }

    private async ValueTask<RateLimitDecision> CountAsync(string policy, ValueTask<RateLimitDecision> pending)
    {
        var decision = await pending;
        Count(policy, decision);
        return decision;
    }

    private void Count(string policy, RateLimitDecision decision)
    {
        if (!decision.Admitted)
        {
            metrics.Rejected(policy);
        }
    }

    /// <summary>Gives the permit back: the policy does not count how the request it admitted ended.</summary>
    public ValueTask ReleaseAsync(RateLimitDecision decision) =>
        decision.Admitted && decision.Key.Length > 0 ? store.ReleaseAsync(decision.Key, decision.Permit, CancellationToken.None) : ValueTask.CompletedTask;

    /// <summary>
    /// The 429's message: which limit was hit, with its configured figures (a client cannot tell the per-gym trigger
    /// limit from its own mutations limit otherwise), and when a request will be admitted again, as in <c>Retry-After</c>.
    /// </summary>
    public string Message(string policy, RateLimitDecision decision)
    {
        var o = options.Value;
        var limit = policy switch
        {
            RateLimitPolicies.Triggers => Describe(o.Triggers, "requests", "per gym for Zapier triggers"),
            RateLimitPolicies.Actions => Describe(o.Actions, "requests", "per gym for Zapier actions"),
            RateLimitPolicies.Mutations => Describe(o.Mutations, "requests", "per user for standard mutations"),
            RateLimitPolicies.Destructive => Describe(o.Destructive, "successful requests", "per user for destructive operations"),
            RateLimitPolicies.StripeWebhooks => Describe(o.StripeWebhooks, "rejected requests", "per client address for Stripe webhooks"),
            RateLimitPolicies.TwilioCallbacks => Describe(o.TwilioCallbacks, "rejected requests", "per client address for Twilio status callbacks"),
            _ => throw new InvalidOperationException($"Unknown rate-limit policy '{policy}'."),
        };
        return string.Create(CultureInfo.InvariantCulture, $"Rate limit exceeded: {limit}; retry after {decision.RetryAfterSeconds} seconds");
    }

    /// <summary>E.g. "60 requests a minute per gym for Zapier triggers", or "30 requests every 90 seconds ..." for another window.</summary>
    private static string Describe(RateLimitPolicyOptions limit, string what, string scope)
    {
        var count = limit.PermitLimit == 1 ? what[..^1] : what; // "1 request"
        var window = limit.Window;
        var per = window == TimeSpan.FromSeconds(1) ? "a second"
            : window == TimeSpan.FromMinutes(1) ? "a minute"
            : window == TimeSpan.FromHours(1) ? "an hour"
            : window == TimeSpan.FromDays(1) ? "a day"
            : window.Ticks % TimeSpan.TicksPerHour == 0 ? string.Create(CultureInfo.InvariantCulture, $"every {window.TotalHours} hours")
            : window.Ticks % TimeSpan.TicksPerMinute == 0 ? string.Create(CultureInfo.InvariantCulture, $"every {window.TotalMinutes} minutes")
            : string.Create(CultureInfo.InvariantCulture, $"every {window.TotalSeconds} seconds");
        return string.Create(CultureInfo.InvariantCulture, $"{limit.PermitLimit} {count} {per} {scope}");
    }

    // The store's key, "policy|gym:ID" or "policy|ACTOR:ID", built in one string: the same text the shared store's rows
    // are keyed by, so nodes of different versions count in the same windows.
    private static string PerGym(string policy, ClaimsPrincipal user) => string.Concat(policy, "|gym:", user.FindFirstValue(GymwireClaims.GymId));

    private static string PerUser(string policy, ClaimsPrincipal user) =>
        string.Concat(policy, "|", user.FindFirstValue(GymwireClaims.Actor), ":", user.FindFirstValue(GymwireClaims.ActorId));

    // By the client's address as sign-in counts it (an IPv6 client by its /64, which it can fill with addresses).
    private static string PerClient(string policy, IPAddress? client) => string.Concat(policy, "|", OwnerSignIn.ClientSubject(client));
}

/// <summary>
/// Enforces the endpoint's policy (named by its <see cref="EnableRateLimitingAttribute"/>): over the limit is a 429 with
/// <c>Retry-After</c> before the handler runs, so it changes nothing. Two policies count only some answers, and give
/// the permit back after the others (see <see cref="Counts"/>).
/// </summary>
public sealed class RateLimitMiddleware(RequestDelegate next, RateLimits limits)
{
    public Task InvokeAsync(HttpContext context)
    {
        var policy = context.GetEndpoint()?.Metadata.GetMetadata<EnableRateLimitingAttribute>()?.PolicyName;
        if (policy is null || (context.User.Identity?.IsAuthenticated != true && !RateLimitPolicies.IsProviderCallback(policy)))
        {
            // Unauthenticated requests never reach a handler (authorization answers first), but on the anonymous
            // routes, whose policy counts by client address.
            return next(context);
        }
        var pending = limits.TryAcquireAsync(policy, context.User, context.Connection.RemoteIpAddress, context.RequestAborted);
        if (!pending.IsCompletedSuccessfully)
        {
            return AcquiredAsync(context, policy, pending);
        }
        // Read once: a value task's result may be taken only once.
        var decision = pending.Result;
        // Most requests are admitted at once and give nothing back: they go on with no async frame of this middleware.
        return decision.Admitted && !CountsSome(policy) ? next(context) : LimitAsync(context, policy, decision);
    }

    private static bool CountsSome(string policy) => policy == RateLimitPolicies.Destructive || RateLimitPolicies.IsProviderCallback(policy);

    /// <summary>
    /// Whether a request of a policy that counts only some answers keeps its permit. A destructive request counts only
    /// when it succeeds, so mistakes (a 404, a validation error, a conflict) never use up the hour's few destructive calls;
    /// a provider's callback (Stripe's webhook, Twilio's status callback) counts only when it is not accepted, so the
    /// limit bounds forged posts, not the provider's deliveries.
    /// </summary>
    private static bool Counts(string policy, bool succeeded) => policy == RateLimitPolicies.Destructive ? succeeded : !succeeded;

    private async Task AcquiredAsync(HttpContext context, string policy, ValueTask<RateLimitDecision> pending) =>
        await LimitAsync(context, policy, await pending);

    private async Task LimitAsync(HttpContext context, string policy, RateLimitDecision decision)
    {
        if (!decision.Admitted)
        {
            context.Response.Headers.RetryAfter = decision.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
            await ApiErrors.WriteAsync(context, StatusCodes.Status429TooManyRequests, limits.Message(policy, decision));
            return;
        }
        if (!CountsSome(policy))
        {
            await next(context);
            return;
        }
        var succeeded = false;
        try
        {
            await next(context);
            succeeded = context.Response.StatusCode is >= 200 and < 300;
        }
        finally
        {
            if (!Counts(policy, succeeded))
            {
                await limits.ReleaseAsync(decision);
            }
        }
    }
}

/// <summary>Requests refused by a rate limit, by policy (meter <c>Gymwire.RateLimiting</c>).</summary>
public sealed class RateLimitMetrics
{
    public const string MeterName = "Gymwire.RateLimiting";
    public const string PolicyTag = "gymwire.rate_limit.policy";

    private readonly Counter<long> _rejections;

    public RateLimitMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _rejections = meter.CreateCounter<long>("gymwire.rate_limit.rejections", "{request}",
            "Requests refused with 429 by a rate limit, by policy (triggers, actions, mutations, destructive, stripe-webhooks, twilio-callbacks).");
    }

    /// <summary>The policy is one of <see cref="RateLimitPolicies"/>' names.</summary>
    public void Rejected(string policy) => _rejections.Add(1, new KeyValuePair<string, object?>(PolicyTag, policy));
}
