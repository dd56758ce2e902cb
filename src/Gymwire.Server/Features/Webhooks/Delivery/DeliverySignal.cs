using Gymwire.Infrastructure;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Wakes the delivery worker at once: new deliveries from the dispatcher, a redeliver, a freed slot.
/// Its other wake-ups: polling (<c>Webhooks:PollInterval</c>), the next due delivery, and the end of a failing endpoint's pause.
/// </summary>
public sealed class DeliverySignal : WakeSignal;
