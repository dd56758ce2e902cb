using Gymwire.Infrastructure;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Wakes the delivery worker at once: new deliveries from the dispatcher, a redeliver, a freed slot.
/// Polling (<c>Webhooks:PollInterval</c>) and the next due retry are its only other wake-ups.
/// </summary>
public sealed class DeliverySignal : WakeSignal;
