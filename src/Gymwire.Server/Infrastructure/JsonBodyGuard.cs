using System.Buffers;
using System.Text.Unicode;
using Microsoft.Net.Http.Headers;

namespace Gymwire.Infrastructure;

/// <summary>
/// Refuses JSON request bodies that are not valid UTF-8, or whose strings hold a control character that
/// <see cref="RequestText"/> forbids, before any handler reads them, whatever reads them afterwards (bound records,
/// the Zapier actions, JsonElement fields). System.Text.Json validates the strings it decodes, but skips unknown
/// properties without looking inside them, so <c>{"unknown": "\xFF"}</c> would otherwise be accepted. Bodies are
/// already capped by <c>Server:MaxRequestBodyBytes</c>, so buffering one is bounded.
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
                if (!AcceptCharset(request))
                {
                    await ErrorHandling.RefuseAsync(context, StatusCodes.Status415UnsupportedMediaType,
                        "JSON request bodies must be UTF-8: send Content-Type application/json with charset=utf-8 or no charset");
                    return;
                }
                request.EnableBuffering();
                var (valid, escapes) = await IsValidUtf8Async(request.Body, context.RequestAborted);
                if (!valid)
                {
                    await ErrorHandling.RefuseAsync(context, StatusCodes.Status400BadRequest, "The request body is not valid UTF-8");
                    return;
                }
                // JSON cannot carry a raw control character inside a string: only an escape (\u0000, \b, \f) can.
                if (escapes)
                {
                    request.Body.Position = 0;
                    if (await FindForbiddenAsync(request.Body, context.RequestAborted) is { } message)
                    {
                        await ErrorHandling.RefuseAsync(context, StatusCodes.Status400BadRequest, message);
                        return;
                    }
                }
                request.Body.Position = 0;
            }
        }
        await next(context);
    }

    /// <summary>
    /// JSON between systems is UTF-8 (RFC 8259), and the checks here read the body as UTF-8, so another charset is
    /// refused: the platform's reader would transcode it past them. A quoted or differently spelled UTF-8 is rewritten
    /// to the plain name, which is the only one the platform's reader knows (it throws on the others: a 500).
    /// </summary>
    private static bool AcceptCharset(HttpRequest request)
    {
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var type) || !type.Charset.HasValue)
        {
            return true;
        }
        var charset = HeaderUtilities.RemoveQuotes(type.Charset);
        if (!charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) && !charset.Equals("utf8", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        if (type.Charset != "utf-8")
        {
            type.Charset = "utf-8";
            request.ContentType = type.ToString();
        }
        return true;
    }

    /// <summary>Whether the body is valid UTF-8, and whether it has a backslash (so a JSON escape) anywhere.</summary>
    private static async Task<(bool Valid, bool Escapes)> IsValidUtf8Async(Stream body, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            var carried = 0;
            var escapes = false;
            int read;
            while ((read = await body.ReadAsync(buffer.AsMemory(carried, buffer.Length - carried), ct)) > 0)
            {
                var length = carried + read;
                // A multi-byte sequence may straddle two reads: validate up to the last complete sequence.
                var span = buffer.AsSpan(0, length);
                var complete = CompleteLength(span);
                if (!Utf8.IsValid(span[..complete]))
                {
                    return (false, escapes);
                }
                escapes |= span[..complete].Contains((byte)'\\');
                carried = length - complete;
                span[complete..].CopyTo(buffer);
            }
            return (carried == 0, escapes);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Reads the body's tokens and names the first string (value or property name) holding a forbidden character.
    /// JSON that does not parse is left to the endpoint, which says what is wrong with it.
    /// </summary>
    private static async Task<string?> FindForbiddenAsync(Stream body, CancellationToken ct)
    {
        using var copy = new MemoryStream();
        await body.CopyToAsync(copy, ct);
        return FindForbidden(copy.GetBuffer().AsSpan(0, (int)copy.Length));
    }

    internal static string? FindForbidden(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        // The name of the field the next value belongs to (an array's items take the array's name), and the enclosing ones.
        string? field = null;
        var outer = new Stack<string?>();
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                        outer.Push(field);
                        field = null;
                        break;
                    case JsonTokenType.StartArray:
                        outer.Push(field);
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        field = outer.Count > 0 ? outer.Pop() : null;
                        break;
                    case JsonTokenType.PropertyName:
                        field = reader.GetString();
                        if (reader.ValueIsEscaped && RequestText.FirstForbidden(field) is { } inName)
                        {
                            return $"A JSON property name contains the control character {RequestText.Name(inName)}, which is not allowed";
                        }
                        break;
                    case JsonTokenType.String when reader.ValueIsEscaped:
                        if (RequestText.FirstForbidden(reader.GetString()) is { } c)
                        {
                            // A field name comes from the client: name at most the first 64 characters of it.
                            var what = field is null ? "The JSON body" : $"Field '{(field.Length > 64 ? ColumnText.Fit(field, 64) + "…" : field)}'";
                            return $"{what} contains the control character {RequestText.Name(c)}, which is not allowed (only tab, CR and LF are)";
                        }
                        break;
                }
            }
        }
        catch (JsonException)
        {
            // Malformed JSON: the endpoint's own reading reports it.
        }
        catch (InvalidOperationException)
        {
            // An escape that decodes to no character (a lone surrogate). Refused here, not left to the endpoint: the
            // platform's reader skips unknown properties without decoding them, so the rest of the body would go unchecked.
            return "A JSON string contains an escaped lone surrogate (\\uD800-\\uDFFF without its pair), which is not valid text";
        }
        return null;
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
