using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard;

/// <summary>The dashboard's 404 page, for browsers; API clients keep the JSON error (<see cref="DashboardNotFound"/>).</summary>
public sealed class NotFoundModel : PageModel
{
    public string RequestedPath { get; private set; } = "";

    public void OnGet()
    {
        Response.StatusCode = StatusCodes.Status404NotFound;
        var original = HttpContext.Features.Get<IStatusCodeReExecuteFeature>();
        RequestedPath = original?.OriginalPath ?? Request.Path.Value ?? "/";
    }
}

/// <summary>
/// Renders <c>/not-found</c> in place of the JSON 404 for a browser: a request outside <c>/api/</c> that accepts HTML and
/// not JSON, a page load or a form posted for a record deleted meanwhile (in another tab, say). Everything else (API
/// clients, curl's <c>*/*</c>) keeps <c>{"error": "Not found"}</c>.
/// </summary>
public static class DashboardNotFound
{
    public const string PagePath = "/not-found";

    public static bool Wants(HttpContext context)
    {
        var request = context.Request;
        if (context.Response.StatusCode != StatusCodes.Status404NotFound || request.Path.StartsWithSegments("/api"))
        {
            return false;
        }
        var accept = request.Headers.Accept.ToString();
        return accept.Contains("text/html", StringComparison.OrdinalIgnoreCase) && !accept.Contains("application/json", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Runs the rest of the pipeline again for <c>/not-found</c>, as <c>UseStatusCodePagesWithReExecute</c> does, but as a
    /// GET (a HEAD stays one): the page answers GET only, and a re-executed POST would otherwise select no handler there.
    /// </summary>
    public static async Task RenderAsync(StatusCodeContext status)
    {
        var context = status.HttpContext;
        var originalPath = context.Request.Path;
        var originalQuery = context.Request.QueryString;
        var originalMethod = context.Request.Method;
        context.Features.Set<IStatusCodeReExecuteFeature>(new StatusCodeReExecuteFeature
        {
            OriginalPathBase = context.Request.PathBase.Value!,
            OriginalPath = originalPath.Value!,
            OriginalQueryString = originalQuery.HasValue ? originalQuery.Value : null,
        });
        context.SetEndpoint(null);
        context.Features.Get<Microsoft.AspNetCore.Http.Features.IRouteValuesFeature>()?.RouteValues.Clear();
        context.Request.Path = PagePath;
        context.Request.QueryString = QueryString.Empty;
        if (!HttpMethods.IsHead(originalMethod))
        {
            context.Request.Method = HttpMethods.Get;
        }
        try
        {
            await status.Next(context);
        }
        finally
        {
            context.Request.Path = originalPath;
            context.Request.QueryString = originalQuery;
            context.Request.Method = originalMethod;
            context.Features.Set<IStatusCodeReExecuteFeature>(null);
        }
    }
}
