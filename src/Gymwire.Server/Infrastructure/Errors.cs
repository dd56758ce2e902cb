using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;

namespace Gymwire.Infrastructure;

/// <summary>The one error shape: <c>{"error": "Human-readable error message"}</c>.</summary>
public sealed record ErrorResponse(string Error);

/// <summary>Typed error results, so handlers' <c>Results&lt;…&gt;</c> signatures describe their errors exactly.</summary>
public static class ApiErrors
{
    public static BadRequest<ErrorResponse> BadRequest(string message) => TypedResults.BadRequest(new ErrorResponse(message));
    public static NotFound<ErrorResponse> NotFound(string message) => TypedResults.NotFound(new ErrorResponse(message));
    public static Conflict<ErrorResponse> Conflict(string message) => TypedResults.Conflict(new ErrorResponse(message));

    public static JsonHttpResult<ErrorResponse> Status(int statusCode, string message) =>
        TypedResults.Json(new ErrorResponse(message), GymwireJson.Options, statusCode: statusCode);

    /// <summary>Writes the error shape directly (middleware, auth handlers, the rate limiter).</summary>
    public static Task WriteAsync(HttpContext context, int statusCode, string message)
    {
        context.Response.StatusCode = statusCode;
        context.Response.ContentType = "application/json; charset=utf-8";
        return context.Response.WriteAsync(JsonSerializer.Serialize(new ErrorResponse(message), GymwireJson.Options), context.RequestAborted);
    }
}

public static partial class ErrorHandling
{
    /// <summary>
    /// Every error from every layer leaves in the error shape: unhandled exceptions (logged, never
    /// leaked), request binding failures, and empty-bodied statuses from routing, auth and the limiter.
    /// </summary>
    public static WebApplication UseGymwireErrors(this WebApplication app)
    {
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            StatusCodeSelector = _ => StatusCodes.Status500InternalServerError,
            ExceptionHandler = HandleExceptionAsync,
            // HandleExceptionAsync logs every exception it handles once: a fault at Error (1000), a client's mistake or a
            // conflict in one line at a lower level. The middleware would log each again, a client's mistake as an
            // unhandled error with its stack; it only logs what reaches it after the response has started. A request
            // aborted by its client never reaches the handler: the middleware answers it 499 and logs it at Debug.
            SuppressDiagnosticsCallback = _ => true,
        });
        app.UseStatusCodePages(context =>
        {
            var response = context.HttpContext.Response;
            if (response.HasStarted || response.ContentLength > 0 || response.ContentType is not null)
            {
                return Task.CompletedTask;
            }
            if (Features.Dashboard.DashboardNotFound.Wants(context.HttpContext))
            {
                return Features.Dashboard.DashboardNotFound.RenderAsync(context);
            }
            return ApiErrors.WriteAsync(context.HttpContext, response.StatusCode, DefaultMessage(response.StatusCode));
        });
        return app;
    }

    private static async Task HandleExceptionAsync(HttpContext context)
    {
        var exception = context.Features.Get<IExceptionHandlerFeature>()?.Error;
        if (exception is BadHttpRequestException bad)
        {
            var endpoint = context.Features.Get<IExceptionHandlerFeature>()?.Endpoint;
            await RefuseAsync(context, bad.StatusCode, DescribeBadRequest(bad, endpoint));
            return;
        }
        var logger = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Gymwire.Errors");
        if (IsConcurrencyConflict(exception) || IsLostRace(exception))
        {
            // Nothing of the request was applied (its transaction rolled back), and the same request can succeed now.
            LogConflict(logger, context.Request.Method, context.Request.Path.ToUriComponent(), exception!.GetBaseException().Message);
            context.Response.Headers.RetryAfter = "1";
            await ApiErrors.WriteAsync(context, StatusCodes.Status503ServiceUnavailable,
                "The request met a concurrent change to the same data and was not applied; retry it");
            return;
        }
        LogUnhandled(logger, context.Request.Method, context.Request.Path, exception);
        // As the middleware does when it records diagnostics: a fault's type on the request's duration, so that 500s
        // can be told apart in http.server.request.duration.
        if (exception is not null && context.Features.Get<IHttpMetricsTagsFeature>() is { } metrics && !metrics.Tags.Any(t => t.Key == "error.type"))
        {
            metrics.Tags.Add(new("error.type", exception.GetType().FullName));
        }
        await ApiErrors.WriteAsync(context, StatusCodes.Status500InternalServerError, "Internal server error");
    }

    /// <summary>How many times a background writer tries a write that <see cref="IsConcurrencyConflict"/> rolled back.</summary>
    internal const int ConflictTries = 3;

    /// <summary>
    /// Runs a background write, and again (up to <see cref="ConflictTries"/> in all) when PostgreSQL rolled it back for a
    /// concurrency conflict, telling <paramref name="onConflict"/> why each time; any other failure, or the last, is the caller's.
    /// </summary>
    internal static async Task<T> RetryConflictsAsync<T>(Func<Task<T>> write, Action<string> onConflict)
    {
        for (var tries = 1; ; tries++)
        {
            try
            {
                return await write();
            }
            catch (Exception e) when (tries < ConflictTries && IsConcurrencyConflict(e))
            {
                onConflict(e.GetBaseException().Message);
            }
        }
    }

    /// <summary>
    /// PostgreSQL broke a deadlock or a serialization conflict by rolling this request's transaction back: two writers
    /// met on the same rows in different orders (an owner's bulk delete and the delivery worker, say). It is neither the
    /// client's fault nor a server fault, and a retry succeeds.
    /// </summary>
    internal static bool IsConcurrencyConflict(Exception? exception) => InChain(exception, e =>
        e is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.DeadlockDetected or Npgsql.PostgresErrorCodes.SerializationFailure });

    /// <summary>
    /// A save whose concurrency token no longer matched (a payment refunded, or a membership canceled, by another request
    /// since this one read it): nothing of it was written, and the same request, run again, sees the change.
    /// </summary>
    internal static bool IsLostRace(Exception? exception) => InChain(exception, e => e is DbUpdateConcurrencyException);

    /// <summary>A write named a row that is gone: one deleted after the writer read it (a webhook deleted while its event was fanned out).</summary>
    internal static bool IsForeignKeyViolation(Exception? exception) => InChain(exception, e =>
        e is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.ForeignKeyViolation }
            or Microsoft.Data.Sqlite.SqliteException { SqliteExtendedErrorCode: SqliteForeignKeyConstraint });

    /// <summary>
    /// A row's insert met one with the same key committed since the writer looked (two first saves of a gym's one-row
    /// setting at once): the writer can apply its change to that row instead.
    /// </summary>
    internal static bool IsUniqueViolation(Exception? exception) => InChain(exception, e =>
        e is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.UniqueViolation }
            or Microsoft.Data.Sqlite.SqliteException { SqliteExtendedErrorCode: SqlitePrimaryKeyConstraint or SqliteUniqueConstraint });

    /// <summary>
    /// The database refused the written values themselves (too long, out of range, a constraint), so the same write fails
    /// on every retry; a lost connection, a timeout or a full disk is not this, and a retry may succeed.
    /// </summary>
    internal static bool IsDataRefused(Exception? exception) => InChain(exception, e =>
        e is Npgsql.PostgresException { SqlState: ['2', '2' or '3', _, _, _] }
            or Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: SqliteConstraint or SqliteTooBig or SqliteMismatch });

    /// <summary>Whether the exception or one it wraps matches (EF Core and its execution strategy wrap the provider's).</summary>
    private static bool InChain(Exception? exception, Func<Exception, bool> matches)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (matches(e))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>SQLITE_TOOBIG, SQLITE_CONSTRAINT and SQLITE_MISMATCH.</summary>
    private const int SqliteTooBig = 18, SqliteConstraint = 19, SqliteMismatch = 20;

    /// <summary>SQLITE_CONSTRAINT_FOREIGNKEY.</summary>
    private const int SqliteForeignKeyConstraint = 787;

    /// <summary>SQLITE_CONSTRAINT_PRIMARYKEY and SQLITE_CONSTRAINT_UNIQUE.</summary>
    private const int SqlitePrimaryKeyConstraint = 1555, SqliteUniqueConstraint = 2067;

    /// <summary>Answers a client error in the error shape and logs it in one line, below Error: the client erred, not the server.</summary>
    public static Task RefuseAsync(HttpContext context, int statusCode, string message)
    {
        var logger = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Gymwire.Errors");
        // The path as it appears in a URI: escaped, so a client cannot write line breaks into the log.
        LogClientError(logger, statusCode, context.Request.Method, context.Request.Path.ToUriComponent(), message);
        return ApiErrors.WriteAsync(context, statusCode, message);
    }

    public static string DefaultMessage(int statusCode) => statusCode switch
    {
        400 => "Bad request",
        401 => "Missing or invalid credentials",
        403 => "Forbidden",
        404 => "Not found",
        405 => "Method not allowed",
        406 => "Not acceptable",
        409 => "Conflict",
        413 => "Request body too large",
        414 => "The request URI is too long",
        415 => "Unsupported media type: send application/json",
        429 => "Rate limit exceeded",
        431 => "The request headers are too large",
        _ => ReasonPhrases.GetReasonPhrase(statusCode) is { Length: > 0 } phrase ? phrase : "Error",
    };

    /// <summary>Turns binding failures into messages that name the field, without echoing internals.</summary>
    internal static string DescribeBadRequest(BadHttpRequestException bad, Endpoint? endpoint = null)
    {
        if (bad.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return "Request body too large";
        }
        if (bad.StatusCode == StatusCodes.Status415UnsupportedMediaType)
        {
            return DefaultMessage(415);
        }
        for (Exception? e = bad; e is not null; e = e.InnerException)
        {
            if (e is JsonException json)
            {
                return DescribeJsonError(json);
            }
            if (e is BadHttpRequestException { StatusCode: 413 })
            {
                return "Request body too large";
            }
        }
        if (bad.Message.Contains("no body was provided", StringComparison.OrdinalIgnoreCase)
            || bad.Message.Contains("Required parameter", StringComparison.OrdinalIgnoreCase) && bad.Message.Contains("body", StringComparison.OrdinalIgnoreCase))
        {
            return "A JSON request body is required";
        }
        if (bad.Message.StartsWith("Failed to bind parameter", StringComparison.Ordinal)
            || bad.Message.StartsWith("Required parameter", StringComparison.Ordinal))
        {
            // e.g. Failed to bind parameter "Guid id" from "abc".
            var name = ExtractParameterName(bad.Message);
            return name is null ? "Invalid request parameter" : $"Invalid or missing parameter '{WireName(name, endpoint)}'";
        }
        return "Bad request";
    }

    internal static string DescribeJsonError(JsonException json)
    {
        var field = json.Path is { Length: > 1 } path ? path.TrimStart('$').TrimStart('.') : null;
        var message = json.Message;
        if (message.StartsWith("The JSON value could not be converted to", StringComparison.Ordinal))
        {
            var expected = ExpectedFromInner(json.InnerException?.Message) ?? ExpectedJsonType(message);
            return field is { Length: > 0 }
                ? $"Field '{field}' has the wrong type{(expected is null ? "" : $" (expected {expected})")}"
                : "The JSON body must be an object";
        }
        if (message.Contains("maximum configured depth", StringComparison.Ordinal))
        {
            return "The JSON body is nested too deeply";
        }
        return field is { Length: > 0 } ? $"Malformed JSON near '{field}'" : "Malformed JSON body";
    }

    // Records bind through their constructor, and then the outer message names the record, not the field's
    // type; the inner exception says what the reader could not do ("... as a string", "... Guid format").
    private static string? ExpectedFromInner(string? inner) => inner switch
    {
        null => null,
        _ when inner.Contains("as a string", StringComparison.Ordinal) => "string",
        _ when inner.Contains("as a number", StringComparison.Ordinal) => "number",
        _ when inner.Contains("as a boolean", StringComparison.Ordinal) => "boolean",
        _ when inner.Contains("Guid", StringComparison.Ordinal) => "uuid string",
        _ when inner.Contains("DateOnly", StringComparison.Ordinal) => "date string YYYY-MM-DD",
        _ when inner.Contains("DateTime", StringComparison.Ordinal) => "ISO-8601 date-time string",
        _ => null,
    };

    private static string? ExpectedJsonType(string message)
    {
        // "The JSON value could not be converted to System.Int32. Path: ..."
        var start = "The JSON value could not be converted to ".Length;
        var end = message.IndexOf(". Path", start, StringComparison.Ordinal);
        var type = end > start ? message[start..end] : message[start..].TrimEnd('.');
        type = type.Replace("System.Nullable`1[", "", StringComparison.Ordinal).TrimEnd(']');
        return type switch
        {
            "System.String" => "string",
            "System.Int32" or "System.Int64" or "System.Int16" => "integer",
            "System.Double" or "System.Decimal" or "System.Single" => "number",
            "System.Boolean" => "boolean",
            "System.Guid" => "uuid string",
            "System.DateTime" or "System.DateTimeOffset" => "ISO-8601 date-time string",
            "System.DateOnly" => "date string YYYY-MM-DD",
            "System.TimeOnly" => "time string HH:MM",
            _ when type.EndsWith("[]", StringComparison.Ordinal) || type.Contains("List`1", StringComparison.Ordinal) => "array",
            _ => null,
        };
    }

    private static string? ExtractParameterName(string message)
    {
        var open = message.IndexOf('"', StringComparison.Ordinal);
        var close = open < 0 ? -1 : message.IndexOf('"', open + 1);
        if (close <= open)
        {
            return null;
        }
        var parts = message[(open + 1)..close].Split(' ');
        return parts[^1];
    }

    /// <summary>
    /// The name the client used for a handler parameter the framework could not bind: its <c>[FromQuery(Name = ...)]</c>
    /// (route, header) name when it has one, e.g. <c>include_left</c> for <c>includeLeft</c>; otherwise its own name.
    /// </summary>
    private static string WireName(string parameter, Endpoint? endpoint)
    {
        var method = endpoint?.Metadata.GetMetadata<System.Reflection.MethodInfo>();
        var info = method?.GetParameters().FirstOrDefault(p => p.Name == parameter);
        if (info is null)
        {
            return parameter;
        }
        foreach (var attribute in info.GetCustomAttributes(inherit: true))
        {
            var name = attribute switch
            {
                Microsoft.AspNetCore.Http.Metadata.IFromQueryMetadata q => q.Name,
                Microsoft.AspNetCore.Http.Metadata.IFromRouteMetadata r => r.Name,
                Microsoft.AspNetCore.Http.Metadata.IFromHeaderMetadata h => h.Name,
                _ => null,
            };
            if (name is { Length: > 0 })
            {
                return name;
            }
        }
        return parameter;
    }

    [LoggerMessage(EventId = 1010, Level = LogLevel.Information, Message = "Client error {StatusCode} for {Method} {Path}: {Reason}")]
    private static partial void LogClientError(ILogger logger, int statusCode, string method, string path, string reason);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Warning, Message = "Concurrent change for {Method} {Path}, answered 503 to be retried: {Reason}")]
    private static partial void LogConflict(ILogger logger, string method, string path, string reason);

    [LoggerMessage(EventId = 1000, Level = LogLevel.Error, Message = "Unhandled exception for {Method} {Path}")]
    private static partial void LogUnhandled(ILogger logger, string method, string path, Exception? exception);
}
