using Microsoft.AspNetCore.Mvc.Filters;

namespace Gymwire.Features.Dashboard;

/// <summary>
/// A POST (or PUT, DELETE, OPTIONS…) for which a page has no handler (a page with only <c>OnGet</c>, or an unknown
/// <c>?handler=</c> name) gets 405 with the methods it has. Razor Pages would render the page without running any handler,
/// and the template would read a model nothing loaded: a NullReferenceException, a 500 logged as an error.
/// </summary>
internal sealed class NoHandlerFilter : IPageFilter
{
    public void OnPageHandlerSelected(PageHandlerSelectedContext context)
    {
    }

    public void OnPageHandlerExecuting(PageHandlerExecutingContext context)
    {
        var method = context.HttpContext.Request.Method;
        // A GET or HEAD without a handler is a page that is only a template: Razor Pages renders it, as it should.
        if (context.HandlerMethod is not null || HttpMethods.IsGet(method) || HttpMethods.IsHead(method))
        {
            return;
        }
        // The methods that would run a handler for this handler name (or render the page, for GET), as Razor Pages selects them.
        var name = HandlerName(context);
        var allowed = context.ActionDescriptor.HandlerMethods
            .Where(h => h.Name is null || string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase))
            .Select(h => h.HttpMethod.ToUpperInvariant())
            .Prepend(HttpMethods.Head).Prepend(HttpMethods.Get)
            .Distinct(StringComparer.Ordinal);
        context.HttpContext.Response.Headers.Allow = string.Join(", ", allowed);
        context.Result = new StatusCodeResult(StatusCodes.Status405MethodNotAllowed);
    }

    public void OnPageHandlerExecuted(PageHandlerExecutedContext context)
    {
    }

    // Where Razor Pages' handler selector reads the name: the route's {handler}, else ?handler=.
    private static string? HandlerName(ActionContext context) =>
        context.RouteData.Values.TryGetValue("handler", out var route) && Convert.ToString(route, System.Globalization.CultureInfo.InvariantCulture) is { Length: > 0 } fromRoute
            ? fromRoute
            : context.HttpContext.Request.Query.TryGetValue("handler", out var query) ? query[0] : null;
}
