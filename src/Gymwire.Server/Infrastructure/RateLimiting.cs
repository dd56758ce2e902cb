using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Security.Claims;
using System.Threading.RateLimiting;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace Gymwire.Infrastructure;

/// <summary>The documented limits, as named policies on endpoint groups.</summary>
public static class RateLimitPolicies
{
    /// <summary>Zapier triggers: 60 requests/minute per gym.</summary>
    public const string Triggers = "triggers";
    /// <summary>Zapier actions: 30 requests/minute per gym.</summary>
    public const string Actions = "actions";
    /// <summary>Standard mutations: 30 requests/minute per user (owner or API key).</summary>
    public const string Mutations = "mutations";
    /// <summary>Destructive operations (deletes, revocations): 5 per hour per user.</summary>
    public const string Destructive = "destructive";
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

    [ValidateObjectMembers] public RateLimitPolicyOptions Triggers { get; set; } = new() { PermitLimit = 60, Window = TimeSpan.FromMinutes(1) };
    [ValidateObjectMembers] public RateLimitPolicyOptions Actions { get; set; } = new() { PermitLimit = 30, Window = TimeSpan.FromMinutes(1) };
    [ValidateObjectMembers] public RateLimitPolicyOptions Mutations { get; set; } = new() { PermitLimit = 30, Window = TimeSpan.FromMinutes(1) };
    [ValidateObjectMembers] public RateLimitPolicyOptions Destructive { get; set; } = new() { PermitLimit = 5, Window = TimeSpan.FromHours(1) };
}

[OptionsValidator]
public sealed partial class RateLimitingOptionsValidator : IValidateOptions<RateLimitingOptions>;

public static class RateLimitingSetup
{
    public static IServiceCollection AddGymwireRateLimiting(this IServiceCollection services)
    {
        services.AddOptions<RateLimitingOptions>().BindConfiguration(RateLimitingOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<RateLimitingOptions>, RateLimitingOptionsValidator>();
        services.AddRateLimiter(_ => { });
        services.AddOptions<RateLimiterOptions>().Configure<IOptions<RateLimitingOptions>, TimeProvider>((limiter, configured, clock) =>
        {
            var o = configured.Value;
            limiter.OnRejected = OnRejectedAsync;
            Add(limiter, RateLimitPolicies.Triggers, o.Triggers, PerGym, o.Enabled, clock);
            Add(limiter, RateLimitPolicies.Actions, o.Actions, PerGym, o.Enabled, clock);
            Add(limiter, RateLimitPolicies.Mutations, o.Mutations, PerUser, o.Enabled, clock);
            Add(limiter, RateLimitPolicies.Destructive, o.Destructive, PerUser, o.Enabled, clock);
        });
        return services;
    }

    private static void Add(RateLimiterOptions limiter, string name, RateLimitPolicyOptions policy, Func<ClaimsPrincipal, string> partition, bool enabled, TimeProvider clock) =>
        limiter.AddPolicy(name, context =>
        {
            if (!enabled || context.User.Identity?.IsAuthenticated != true)
            {
                // Unauthenticated requests never reach a handler (authorization answers first).
                return RateLimitPartition.GetNoLimiter("none");
            }
            return RateLimitPartition.Get(partition(context.User),
                _ => new TimeProviderFixedWindowRateLimiter(clock, policy.PermitLimit, policy.Window));
        });

    private static string PerGym(ClaimsPrincipal user) => "gym:" + user.FindFirstValue(GymwireClaims.GymId);

    private static string PerUser(ClaimsPrincipal user) =>
        user.FindFirstValue(GymwireClaims.Actor) + ":" + user.FindFirstValue(GymwireClaims.ActorId);

    private static async ValueTask OnRejectedAsync(OnRejectedContext context, CancellationToken ct)
    {
        var seconds = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter)
            ? Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds))
            : 60;
        context.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        await ApiErrors.WriteAsync(context.HttpContext, StatusCodes.Status429TooManyRequests,
            $"Rate limit exceeded; retry after {seconds} seconds");
    }
}

/// <summary>
/// A fixed-window limiter that reads time from <see cref="TimeProvider"/> (the framework's uses its own
/// stopwatch), so window resets are testable with a fake clock. No queueing: over the limit is rejected at once.
/// </summary>
public sealed class TimeProviderFixedWindowRateLimiter(TimeProvider clock, int permitLimit, TimeSpan window) : RateLimiter
{
    private readonly Lock _lock = new();
    private DateTimeOffset _windowStart = clock.GetUtcNow();
    private int _used;

    public override TimeSpan? IdleDuration
    {
        get
        {
            lock (_lock)
            {
                var since = clock.GetUtcNow() - (_windowStart + window);
                return since > TimeSpan.Zero ? since : null;
            }
        }
    }

    public override RateLimiterStatistics? GetStatistics()
    {
        lock (_lock)
        {
            return new RateLimiterStatistics { CurrentAvailablePermits = Math.Max(0, permitLimit - _used) };
        }
    }

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        lock (_lock)
        {
            var now = clock.GetUtcNow();
            if (now >= _windowStart + window)
            {
                // Windows align to the first request after the last one ended.
                _windowStart = now;
                _used = 0;
            }
            if (permitCount == 0)
            {
                return _used < permitLimit ? Lease.Granted : new Lease(_windowStart + window - now);
            }
            if (_used + permitCount <= permitLimit)
            {
                _used += permitCount;
                return Lease.Granted;
            }
            return new Lease(_windowStart + window - now);
        }
    }

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
        ValueTask.FromResult(AttemptAcquireCore(permitCount));

    private sealed class Lease(TimeSpan? retryAfter) : RateLimitLease
    {
        public static readonly Lease Granted = new(null);

        public override bool IsAcquired => retryAfter is null;

        public override IEnumerable<string> MetadataNames => retryAfter is null ? [] : [MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            if (retryAfter is { } value && metadataName == MetadataName.RetryAfter.Name)
            {
                metadata = value;
                return true;
            }
            metadata = null;
            return false;
        }
    }
}
