namespace Gymwire.Infrastructure;

/// <summary>
/// Answers that carry a secret (a session token, a new API key, a webhook's signing secret) are never kept by a cache
/// or a browser's history: <c>Cache-Control: no-store</c>, as token answers must have (RFC 6749 §5.1).
/// </summary>
public static class NoStore
{
    public static TBuilder WithNoStore<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilter((context, next) =>
        {
            context.HttpContext.Response.Headers.CacheControl = "no-store";
            return next(context);
        });
}
