using Gymwire.Features.Dashboard.Settings;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard;

/// <summary>
/// The API's limits applied to the dashboard's destructive actions (the same per-owner budget as the owner's API
/// calls), so the dashboard is no way around them. Revoking a key and disabling a webhook are never limited here either.
/// </summary>
public sealed class DashboardRateLimits(RateLimits limits, IOptions<RateLimitingOptions> options)
{
    /// <summary>Takes a destructive permit for the signed-in owner; when refused, answers 429 with <c>Retry-After</c>.</summary>
    public async Task<(RateLimitDecision Decision, string? Problem)> TryDestructiveAsync(PageModel page, CancellationToken ct)
    {
        var decision = await limits.TryAcquireAsync(RateLimitPolicies.Destructive, page.User, ct);
        if (decision.Admitted)
        {
            return (decision, null);
        }
        page.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        page.Response.Headers.RetryAfter = decision.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        var policy = options.Value.Destructive;
        return (decision, $"You have reached the limit of {policy.PermitLimit} deletions and secret rotations per {WebhookViews.Duration(policy.Window)}. " +
            $"Try again in {WebhookViews.Duration(TimeSpan.FromSeconds(decision.RetryAfterSeconds))}.");
    }

    /// <summary>Gives the permit back: the action changed nothing.</summary>
    public ValueTask ReleaseAsync(RateLimitDecision decision) => limits.ReleaseAsync(decision);
}
