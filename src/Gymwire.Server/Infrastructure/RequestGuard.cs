using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gymwire.Infrastructure;

/// <summary>
/// Checks what every request carries before any endpoint sees it: the size of its request line and headers
/// (414 and 431 in the error shape), and the text of its query string and form fields (no control character
/// that <see cref="RequestText"/> forbids; a form that cannot be read is a 400).
/// </summary>
public sealed class RequestGuard(RequestDelegate next)
{
    /// <summary>Kestrel's own defaults, enforced here so that the answer has a body.</summary>
    public const int MaxRequestLineBytes = 8 * 1024;
    public const int MaxRequestHeadersBytes = 32 * 1024;
    public const int MaxRequestHeaderCount = 100;

    /// <summary>
    /// Kestrel answers requests over its limits itself, with an empty body and before any middleware runs, so its
    /// limits are set above ours (<see cref="ServerSetup.AddServerLimits"/>) and only catch requests far past them.
    /// </summary>
    public static void RaiseKestrelLimits(KestrelServerLimits limits)
    {
        limits.MaxRequestLineSize = 2 * MaxRequestLineBytes;
        limits.MaxRequestHeadersTotalSize = 2 * MaxRequestHeadersBytes;
        limits.MaxRequestHeaderCount = 2 * MaxRequestHeaderCount;
    }

    public async Task InvokeAsync(HttpContext context)
    {
        if (Refusal(context) is { } refusal)
        {
            await ErrorHandling.RefuseAsync(context, refusal.Status, refusal.Message);
            return;
        }
        var request = context.Request;
        if (request.HasFormContentType && (HttpMethods.IsPost(request.Method) || HttpMethods.IsPut(request.Method) || HttpMethods.IsPatch(request.Method)))
        {
            IFormCollection form;
            try
            {
                // Buffered in the request's form feature: model binding and antiforgery read this same collection.
                form = await request.ReadFormAsync(context.RequestAborted);
            }
            catch (Exception e) when (e is InvalidDataException || e is IOException and not Microsoft.AspNetCore.Http.BadHttpRequestException && !context.RequestAborted.IsCancellationRequested)
            {
                // A broken multipart body, one over the form value limits, or a %00 (which the form reader itself refuses).
                var reason = e.InnerException?.Message.Contains("null characters", StringComparison.Ordinal) == true
                    ? $"A form field contains the control character {RequestText.Name('\0')}, which is not allowed"
                    : e is InvalidDataException ? $"Malformed form body: {e.Message}" : "Malformed form body";
                await ErrorHandling.RefuseAsync(context, StatusCodes.Status400BadRequest, reason);
                return;
            }
            if (FirstForbidden(form, "Form field") is { } message)
            {
                await ErrorHandling.RefuseAsync(context, StatusCodes.Status400BadRequest, message);
                return;
            }
        }
        await next(context);
    }

    private static (int Status, string Message)? Refusal(HttpContext context)
    {
        var request = context.Request;
        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? request.Path + request.QueryString;
        if (request.Method.Length + target.Length + request.Protocol.Length + 4 > MaxRequestLineBytes)
        {
            return (StatusCodes.Status414RequestUriTooLong, $"The request URI is too long (at most {MaxRequestLineBytes} bytes)");
        }
        long headerBytes = 0;
        var headerCount = 0;
        foreach (var (name, values) in request.Headers)
        {
            foreach (var value in values)
            {
                headerBytes += name.Length + (value?.Length ?? 0) + 4;
                headerCount++;
            }
        }
        if (headerBytes > MaxRequestHeadersBytes || headerCount > MaxRequestHeaderCount)
        {
            return (StatusCodes.Status431RequestHeaderFieldsTooLarge,
                $"The request headers are too large (at most {MaxRequestHeaderCount} fields and {MaxRequestHeadersBytes} bytes)");
        }
        return FirstForbidden(request.Query, "Query parameter") is { } message ? (StatusCodes.Status400BadRequest, message) : null;
    }

    private static string? FirstForbidden(IEnumerable<KeyValuePair<string, Microsoft.Extensions.Primitives.StringValues>> fields, string what)
    {
        foreach (var (name, values) in fields)
        {
            if (RequestText.FirstForbidden(name) is { } inName)
            {
                return $"{what} names must not contain control characters ({RequestText.Name(inName)})";
            }
            foreach (var value in values)
            {
                if (RequestText.FirstForbidden(value) is { } c)
                {
                    // The name is safe to echo: it was just checked.
                    return $"{what} '{name}' contains the control character {RequestText.Name(c)}, which is not allowed";
                }
            }
        }
        return null;
    }
}
