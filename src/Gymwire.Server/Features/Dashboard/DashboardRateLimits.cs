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

    /// <summary>
    /// A destructive delete: runs <paramref name="delete"/> with a permit, and gives it back when it removed nothing.
    /// False when the limit refused it: the page then carries the problem as a form error and a 429 status.
    /// </summary>
    public async Task<bool> TryDeleteAsync(PageModel page, Func<Task<int>> delete, CancellationToken ct)
    {
        var (permit, limited) = await TryDestructiveAsync(page, ct);
        if (limited is not null)
        {
            page.ModelState.AddModelError(string.Empty, limited);
            return false;
        }
        if (await delete() == 0)
        {
            await ReleaseAsync(permit);
        }
        return true;
    }
}
