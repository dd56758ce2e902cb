using System.Net;

namespace Gymwire.Client;

/// <summary>An error answer from the API: its status and the <c>{"error": "..."}</c> message.</summary>
public sealed class GymwireApiException : Exception
{
    /// <summary>Creates the exception for a status and the server's message.</summary>
    public GymwireApiException(HttpStatusCode statusCode, string message, TimeSpan? retryAfter = null) : base(message)
    {
        StatusCode = statusCode;
        RetryAfter = retryAfter;
    }

    /// <summary>Creates an exception with a message only (status 0).</summary>
    public GymwireApiException(string message) : base(message)
    {
    }

    /// <summary>Creates an exception wrapping another.</summary>
    public GymwireApiException(string message, Exception innerException) : base(message, innerException)
    {
    }

    /// <summary>Creates an exception with no message.</summary>
    public GymwireApiException()
    {
    }

    /// <summary>The HTTP status (400, 401, 403, 404, 409, 413, 429, 500).</summary>
    public HttpStatusCode StatusCode { get; }

    /// <summary>For 429: how long the server asked to wait.</summary>
    public TimeSpan? RetryAfter { get; }
}
