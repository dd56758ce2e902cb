using Microsoft.AspNetCore.Mvc.ViewFeatures;

namespace Gymwire.Features.Dashboard;

/// <summary>
/// Post/redirect/get for the dashboard's forms. A POST that changes something redirects, and what its answer has to
/// say travels in TempData (a Data Protection-encrypted cookie, read once): a message for the next page, or a
/// shown-once secret. Reloading the page after the redirect repeats only the GET, never the change.
/// </summary>
public static class Flash
{
    private const string MessageKey = "gymwire.flash";
    private const string ProblemKey = "gymwire.flash.problem";
    private const string ShownOncePrefix = "gymwire.once.";

    /// <summary>A message the next page shows once ("Webhook disabled.").</summary>
    public static void SetFlash(this ITempDataDictionary tempData, string message) => tempData[MessageKey] = message;

    /// <summary>The message, removed as it is read.</summary>
    public static string? TakeFlash(this ITempDataDictionary tempData) => tempData[MessageKey] as string;

    /// <summary>A message the next page shows once as a problem ("That form had expired…").</summary>
    public static void SetProblem(this ITempDataDictionary tempData, string message) => tempData[ProblemKey] = message;

    /// <summary>The problem message, removed as it is read.</summary>
    public static string? TakeProblem(this ITempDataDictionary tempData) => tempData[ProblemKey] as string;

    /// <summary>
    /// Keeps <paramref name="value"/> for the next request of this sign-in only: the page the POST redirects to shows it
    /// and it is gone (a new key, a webhook's signing secret). Never logged, never in a URL. The TempData cookie outlives
    /// a sign-out, so the value names the owner's session: a redirect never followed does not show it to whoever signs
    /// in next on that browser.
    /// </summary>
    public static void PutOnce<T>(this ITempDataDictionary tempData, ClaimsPrincipal owner, string name, T value) =>
        tempData[ShownOncePrefix + name] = JsonSerializer.Serialize(new ShownOnce(SessionOf(owner), JsonSerializer.Serialize(value)));

    /// <summary>The value kept by <see cref="PutOnce{T}"/> in this sign-in, removed as it is read; null when already shown or another sign-in's.</summary>
    public static T? TakeOnce<T>(this ITempDataDictionary tempData, ClaimsPrincipal owner, string name) where T : class =>
        tempData[ShownOncePrefix + name] is string json && JsonSerializer.Deserialize<ShownOnce>(json) is { } kept && kept.Session == SessionOf(owner)
            ? JsonSerializer.Deserialize<T>(kept.Value)
            : null;

    private static Guid SessionOf(ClaimsPrincipal owner) =>
        DashboardSessions.SessionId(owner) ?? throw new InvalidOperationException("A shown-once value needs a signed-in owner's session.");

    private sealed record ShownOnce(Guid Session, string Value);
}
