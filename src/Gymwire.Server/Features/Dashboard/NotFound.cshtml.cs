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
/// Renders <c>/not-found</c> in place of the JSON 404 for a browser's page request: a GET or HEAD outside <c>/api/</c> that
/// accepts HTML and not JSON. Everything else (API clients, curl's <c>*/*</c>) keeps <c>{"error": "Not found"}</c>.
/// </summary>
public static class DashboardNotFound
{
    public const string PagePath = "/not-found";

    public static bool Wants(HttpContext context)
    {
        var request = context.Request;
        if (context.Response.StatusCode != StatusCodes.Status404NotFound || !(HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method))
            || request.Path.StartsWithSegments("/api"))
        {
            return false;
        }
        var accept = request.Headers.Accept.ToString();
        return accept.Contains("text/html", StringComparison.OrdinalIgnoreCase) && !accept.Contains("application/json", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Runs the rest of the pipeline again for <c>/not-found</c>, as <c>UseStatusCodePagesWithReExecute</c> does.</summary>
    public static async Task RenderAsync(StatusCodeContext status)
    {
        var context = status.HttpContext;
        var originalPath = context.Request.Path;
        var originalQuery = context.Request.QueryString;
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
        try
        {
            await status.Next(context);
        }
        finally
        {
            context.Request.Path = originalPath;
            context.Request.QueryString = originalQuery;
            context.Features.Set<IStatusCodeReExecuteFeature>(null);
        }
    }
}
