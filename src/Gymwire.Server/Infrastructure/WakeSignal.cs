namespace Gymwire.Infrastructure;

/// <summary>
/// Wakes a background worker at once, holding at most one pending wake-up: a burst of notifications wakes it
/// once. Each worker has its own subclass, so each is its own singleton in DI.
/// </summary>
public abstract class WakeSignal
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

    /// <summary>Waits for a wake-up or the timeout; true when woken.</summary>
    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _signal.WaitAsync(timeout, cancellationToken);
}
