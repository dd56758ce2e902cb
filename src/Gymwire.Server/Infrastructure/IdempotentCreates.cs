using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Features.Zapier;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Infrastructure;

/// <summary>Marks an endpoint that honours <c>Idempotency-Key</c> (for the OpenAPI description).</summary>
public sealed class IdempotentCreateMetadata
{
    public static readonly IdempotentCreateMetadata Instance = new();
}

/// <summary>
/// <c>Idempotency-Key</c> on every create under <c>/api/gym/</c>, with the Zapier actions' semantics (described in
/// the README). The key's record is written in the create's own transaction, so a concurrent duplicate waits and
/// replays the committed answer, and a failed create releases its key. API keys and webhooks are left out: their
/// answers carry a secret, which must not be stored to replay.
/// </summary>
public static class IdempotentCreates
{
    private static readonly string[] Excluded = ["/api/gym/api-keys", "/api/gym/webhooks"];

    /// <summary>Adds the filter to every endpoint of <paramref name="group"/> that is a create under <c>/api/gym/</c>.</summary>
    public static TBuilder WithIdempotentCreates<TBuilder>(this TBuilder group) where TBuilder : IEndpointConventionBuilder
    {
        group.Add(endpoint =>
        {
            if (endpoint is RouteEndpointBuilder route && IsCreate(route.RoutePattern, route.Metadata))
            {
                endpoint.Metadata.Add(IdempotentCreateMetadata.Instance);
                endpoint.FilterFactories.Add((_, next) => invocation => InvokeAsync(invocation, next));
            }
        });
        return group;
    }

    private static bool IsCreate(RoutePattern pattern, IList<object> metadata)
    {
        var path = "/" + (pattern.RawText ?? "").Trim('/');
        return metadata.OfType<HttpMethodMetadata>().Any(m => m.HttpMethods.Contains(HttpMethods.Post))
            && path.StartsWith("/api/gym/", StringComparison.Ordinal)
            && pattern.Parameters.Count == 0
            && !Excluded.Contains(path, StringComparer.Ordinal);
    }

    private static async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var http = invocation.HttpContext;
        string? key = http.Request.Headers[ZapierActions.IdempotencyHeader];
        if (key is null)
        {
            return await next(invocation);
        }
        if (key.Length is 0 or > 255)
        {
            return ApiErrors.BadRequest($"'{ZapierActions.IdempotencyHeader}' must be 1 to 255 characters");
        }
        var ct = http.RequestAborted;
        var services = http.RequestServices;
        var db = services.GetRequiredService<GymwireDbContext>();
        var now = services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime;
        var gymId = http.User.GetGymId();
        var hash = await HashAsync(http.Request, ct);

        if (await ReplayAsync(http, db, gymId, key, hash, now, ct) is { } replay)
        {
            return replay;
        }

        using var writeLock = await services.GetRequiredService<SqliteWriteGate>().EnterAsync(db, ct);
        await using var transaction = await db.Database.BeginTransactionAsync(ct);
        var record = new IdempotencyRecord
        {
            Id = Guid.CreateVersion7(now), GymId = gymId, Key = key, RequestHash = hash, StatusCode = 0, ResponseBody = "", CreatedAt = now,
        };
        db.IdempotencyRecords.Add(record);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException)
        {
            // A concurrent request with this key committed first (we waited for it on the unique index): answer with its response.
            await transaction.RollbackAsync(ct);
            db.ChangeTracker.Clear();
            return await ReplayAsync(http, db, gymId, key, hash, now, ct)
                ?? ApiErrors.Status(StatusCodes.Status409Conflict, $"A request with this {ZapierActions.IdempotencyHeader} is in progress; retry it");
        }
        db.Entry(record).State = EntityState.Detached;

        var result = await next(invocation);
        if (Response(result) is not { } response)
        {
            // Not a success: nothing of it stays, the key included.
            await transaction.RollbackAsync(ct);
            db.ChangeTracker.Clear();
            return result;
        }
        await db.IdempotencyRecords.Where(r => r.Id == record.Id)
            .ExecuteUpdateAsync(u => u.SetProperty(r => r.StatusCode, response.Status).SetProperty(r => r.ResponseBody, response.Json), ct);
        await transaction.CommitAsync(ct);
        return result;
    }

    /// <summary>The status and JSON body of a successful typed result (<c>Created&lt;T&gt;</c>, <c>Ok&lt;T&gt;</c>, inside <c>Results&lt;…&gt;</c>).</summary>
    private static (int Status, string Json)? Response(object? result)
    {
        while (result is INestedHttpResult nested)
        {
            result = nested.Result;
        }
        if (result is IStatusCodeHttpResult { StatusCode: >= 200 and < 300 and var status } and IValueHttpResult { Value: { } value })
        {
            return (status, JsonSerializer.Serialize(value, value.GetType(), GymwireJson.Options));
        }
        return null;
    }

    private static async Task<byte[]> HashAsync(HttpRequest request, CancellationToken ct)
    {
        // JsonBodyGuard buffered the JSON body; the handler's binding has read it already.
        using var body = new MemoryStream();
        if (request.Body.CanSeek)
        {
            request.Body.Position = 0;
            await request.Body.CopyToAsync(body, ct);
        }
        return SHA256.HashData([.. Encoding.UTF8.GetBytes($"{request.Method} {request.Path}\n"), .. body.ToArray()]);
    }

    /// <summary>
    /// The gym's record of <paramref name="key"/> within the idempotency window, or null. An expired one is deleted, so
    /// the key may be used afresh: concurrent retries may all find it, and one statement each deletes it at most once;
    /// the unique key then lets one of them create. Shared by these creates and the Zapier actions.
    /// </summary>
    public static async Task<IdempotencyRecord?> FindLiveAsync(GymwireDbContext db, Guid gymId, string key, DateTime now, CancellationToken ct)
    {
        var record = await db.IdempotencyRecords.AsNoTracking().FirstOrDefaultAsync(r => r.GymId == gymId && r.Key == key, ct);
        if (record is not null && record.CreatedAt < now - ZapierActions.IdempotencyWindow)
        {
            await db.IdempotencyRecords.Where(r => r.Id == record.Id).ExecuteDeleteAsync(ct);
            return null;
        }
        return record;
    }

    private static async Task<IResult?> ReplayAsync(HttpContext http, GymwireDbContext db, Guid gymId, string key, byte[] hash, DateTime now, CancellationToken ct)
    {
        if (await FindLiveAsync(db, gymId, key, now, ct) is not { } record)
        {
            return null;
        }
        if (!CryptographicOperations.FixedTimeEquals(record.RequestHash, hash))
        {
            return ApiErrors.Status(StatusCodes.Status409Conflict, $"This {ZapierActions.IdempotencyHeader} was already used with a different request");
        }
        if (record.StatusCode == 0)
        {
            return ApiErrors.Status(StatusCodes.Status409Conflict, $"A request with this {ZapierActions.IdempotencyHeader} is in progress; retry it");
        }
        http.Response.Headers["Idempotent-Replayed"] = "true";
        if (record.StatusCode == StatusCodes.Status201Created && LocationOf(http.Request, record.ResponseBody) is { } location)
        {
            http.Response.Headers.Location = location;
        }
        return Results.Content(record.ResponseBody, "application/json; charset=utf-8", Encoding.UTF8, record.StatusCode);
    }

    /// <summary>Every create answers <c>Location: {collection}/{id}</c>; the replay rebuilds it from the stored body.</summary>
    private static string? LocationOf(HttpRequest request, string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String
            ? $"{request.PathBase}{request.Path.Value?.TrimEnd('/')}/{id.GetString()}"
            : null;
    }
}
