namespace Gymwire.Features.Webhooks;

/// <summary>
/// Wakes the delivery worker at once: new deliveries from the dispatcher, a redeliver, a freed slot.
/// Polling (<c>Webhooks:PollInterval</c>) and the next due retry are its only other wake-ups.
/// </summary>
public sealed class DeliverySignal
{
    private readonly SemaphoreSlim _signal = new(0, 1);

    public void Notify()
    {
        if (_signal.CurrentCount == 0)
        {
            try
            {
                _signal.Release();
            }
            catch (SemaphoreFullException)
            {
                // Another thread released first; one pending wake-up is enough.
            }
        }
    }

    public Task WaitAsync(CancellationToken cancellationToken) => _signal.WaitAsync(cancellationToken);
}
