using Gymwire.Features.Dashboard.Settings;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard;

/// <summary>
/// The API's limits applied to the dashboard's actions (the same per-owner budgets as the owner's API calls), so the
/// dashboard is no way around them: what the API limits as a mutation or a destructive call is limited so here.
/// Revoking a key and disabling a webhook are never limited here either.
/// </summary>
public sealed class DashboardRateLimits(RateLimits limits, IOptions<RateLimitingOptions> options)
{
    /// <summary>Takes a destructive permit for the signed-in owner; when refused, answers 429 with <c>Retry-After</c>.</summary>
    public Task<(RateLimitDecision Decision, string? Problem)> TryDestructiveAsync(PageModel page, CancellationToken ct) =>
        TryAsync(page, RateLimitPolicies.Destructive, options.Value.Destructive, "deletions and secret rotations", ct);

    /// <summary>
    /// Takes a mutation permit (a create, a change, a test send, a redelivery) for the signed-in owner; when refused,
    /// answers 429 with <c>Retry-After</c> and returns the problem to show.
    /// </summary>
    public async Task<string?> TryMutationAsync(PageModel page, CancellationToken ct) =>
        (await TryAsync(page, RateLimitPolicies.Mutations, options.Value.Mutations, "changes", ct)).Problem;

    private async Task<(RateLimitDecision Decision, string? Problem)> TryAsync(PageModel page, string policyName, RateLimitPolicyOptions policy, string what, CancellationToken ct)
    {
        var decision = await limits.TryAcquireAsync(policyName, page.User, client: null, ct);
        if (decision.Admitted)
        {
            return (decision, null);
        }
        page.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        page.Response.Headers.RetryAfter = decision.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        return (decision, $"You have reached the limit of {policy.PermitLimit} {what} per {WebhookViews.Duration(policy.Window)}. " +
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
