using System.Threading.Channels;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// This node's delivery slots (<c>Webhooks:MaxConcurrentDeliveries</c>). A delivery holds one from its claim until its
/// attempt is recorded or its claim is given back, so a crash can send at most that many twice. The worker takes free
/// slots for its claims; the dispatcher takes them for deliveries it inserts already claimed and hands over here
/// (<see cref="HandOver"/>), so that a fresh event is sent without a claim of its own. Closed (no slot to take) until
/// the worker runs, and again once it stops.
/// </summary>
public sealed class DeliverySlots(IOptions<WebhookOptions> options)
{
    private readonly int _capacity = options.Value.MaxConcurrentDeliveries;
    private readonly Lock _lock = new();
    private readonly Channel<IReadOnlyList<ClaimedDelivery>> _handedOver =
        Channel.CreateUnbounded<IReadOnlyList<ClaimedDelivery>>(new UnboundedChannelOptions { SingleReader = true });
    private int _taken;
    private bool _open;

    /// <summary>Slots neither taken nor in use.</summary>
    public int Free
    {
        get
        {
            lock (_lock)
            {
                return _capacity - _taken;
            }
        }
    }

    /// <summary>Takes up to <paramref name="wanted"/> free slots; returns how many (none while closed).</summary>
    public int Take(int wanted)
    {
        lock (_lock)
        {
            if (!_open)
            {
                return 0;
            }
            var taken = Math.Clamp(_capacity - _taken, 0, wanted);
            _taken += taken;
            return taken;
        }
    }

    /// <summary>Gives back slots: their deliveries were recorded, given back, or never claimed.</summary>
    public void Return(int count)
    {
        lock (_lock)
        {
            _taken -= count;
        }
    }

    /// <summary>
    /// Hands claimed deliveries, one slot taken for each, to the worker. False once the worker has stopped: the caller
    /// gives the claims and the slots back.
    /// </summary>
    public bool HandOver(IReadOnlyList<ClaimedDelivery> claimed) => _handedOver.Writer.TryWrite(claimed);

    /// <summary>The worker's side of <see cref="HandOver"/>.</summary>
    internal bool TryTakeHandedOver(out IReadOnlyList<ClaimedDelivery> claimed) => _handedOver.Reader.TryRead(out claimed!);

    /// <summary>The worker is running: slots may be taken.</summary>
    internal void Open()
    {
        lock (_lock)
        {
            _open = true;
        }
    }

    /// <summary>The worker is stopping: no slot is taken, nothing more is handed over.</summary>
    internal void Close()
    {
        lock (_lock)
        {
            _open = false;
        }
        _handedOver.Writer.TryComplete();
    }
}

/// <summary>
/// The sends of one early hand-over (<see cref="DeliverySlots.HandOver"/>): the worker marks each delivery once its
/// request is on its way, or once it sets the delivery aside (refused, given back, dropped). The dispatcher inserts the
/// fan-out's rows when all are marked: on a machine of few cores the insert would otherwise take the CPU the sends need.
/// </summary>
public sealed class HandOverSends
{
    private readonly HashSet<Guid> _waiting;
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public HandOverSends(IEnumerable<Guid> deliveryIds)
    {
        _waiting = [.. deliveryIds];
        if (_waiting.Count == 0)
        {
            _all.SetResult();
        }
    }

    /// <summary>Completes when every delivery is marked.</summary>
    public Task All => _all.Task;

    /// <summary>Marks a delivery; marking it again does nothing, so every way out of the worker may mark it.</summary>
    public void Started(Guid deliveryId)
    {
        lock (_lock)
        {
            if (!_waiting.Remove(deliveryId) || _waiting.Count > 0)
            {
                return;
            }
        }
        _all.TrySetResult();
    }
}
