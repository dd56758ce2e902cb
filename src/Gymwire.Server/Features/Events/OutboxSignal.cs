using Gymwire.Infrastructure;

namespace Gymwire.Features.Events;

/// <summary>
/// Wakes whoever waits for new outbox events (the webhook dispatcher) as soon as a write that added events commits
/// (<see cref="AfterCommitInterceptor"/>), so delivery does not wait for a polling interval.
/// </summary>
public sealed class OutboxSignal : WakeSignal;
