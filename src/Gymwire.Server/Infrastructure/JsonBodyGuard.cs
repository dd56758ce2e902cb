using System.Buffers;
using System.Text.Unicode;

namespace Gymwire.Infrastructure;

/// <summary>
/// Refuses JSON request bodies that are not valid UTF-8, before any handler reads them. System.Text.Json
/// validates the strings it decodes, but skips unknown properties without looking inside them, so
/// <c>{"unknown": "\xFF"}</c> would otherwise be accepted. Bodies are already capped by
/// <c>Server:MaxRequestBodyBytes</c>, so buffering one is bounded.
/// </summary>
public sealed class JsonBodyGuard(RequestDelegate next)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (request.ContentLength != 0 && (HttpMethods.IsPost(request.Method) || HttpMethods.IsPut(request.Method) || HttpMethods.IsPatch(request.Method)))
        {
            // A declared length over the limit is refused before a byte is read (with Expect: 100-continue,
            // before the client even sends the body).
            var limit = context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
            if (request.ContentLength > limit)
            {
                await ErrorHandling.RefuseAsync(context, StatusCodes.Status413PayloadTooLarge, "Request body too large");
                return;
            }
            if (request.HasJsonContentType())
            {
                request.EnableBuffering();
                if (!await IsValidUtf8Async(request.Body, context.RequestAborted))
                {
                    await ErrorHandling.RefuseAsync(context, StatusCodes.Status400BadRequest, "The request body is not valid UTF-8");
                    return;
                }
                request.Body.Position = 0;
            }
        }
        await next(context);
    }

    private static async Task<bool> IsValidUtf8Async(Stream body, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            var carried = 0;
            int read;
            while ((read = await body.ReadAsync(buffer.AsMemory(carried, buffer.Length - carried), ct)) > 0)
            {
                var length = carried + read;
                // A multi-byte sequence may straddle two reads: validate up to the last complete sequence.
                var span = buffer.AsSpan(0, length);
                var complete = CompleteLength(span);
                if (!Utf8.IsValid(span[..complete]))
                {
                    return false;
                }
                carried = length - complete;
                span[complete..].CopyTo(buffer);
            }
            return carried == 0;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static int CompleteLength(ReadOnlySpan<byte> span)
    {
        // Walk back over at most 3 continuation bytes to the lead byte of the last sequence.
        for (var back = 1; back <= Math.Min(4, span.Length); back++)
        {
            var b = span[^back];
            if ((b & 0xC0) != 0x80)
            {
                var needed = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
                return needed > back ? span.Length - back : span.Length;
            }
        }
        return span.Length;
    }
}
