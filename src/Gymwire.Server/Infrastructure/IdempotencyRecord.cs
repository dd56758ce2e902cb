namespace Gymwire.Infrastructure;

/// <summary>
/// The stored outcome of an action sent with an <c>Idempotency-Key</c>, written in the same transaction as
/// the action itself: a retry returns this response and creates nothing new.
/// </summary>
public sealed class IdempotencyRecord
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public required string Key { get; set; }
    /// <summary>SHA-256 of the action type and body: the same key with a different request is a conflict.</summary>
    public required byte[] RequestHash { get; set; }
    public int StatusCode { get; set; }
    public required string ResponseBody { get; set; }
    public DateTime CreatedAt { get; set; }
}
