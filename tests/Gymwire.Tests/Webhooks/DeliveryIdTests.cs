using Gymwire.Features.Webhooks;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// A fanned-out delivery's id (<see cref="WebhookDelivery.IdFor"/>) is its <c>webhook-id</c>, and a fan-out run again
/// after a rollback must send under the same one: the same event and subscription always give the same id, and any
/// other pair a different one.
/// </summary>
public sealed class DeliveryIdTests
{
    [Fact]
    public void The_same_event_and_subscription_give_the_same_id_and_others_a_different_one()
    {
        var occurred = new DateTime(2026, 12, 6, 8, 30, 15, 123, DateTimeKind.Utc);
        var evt = Guid.CreateVersion7(occurred);
        var subscription = Guid.NewGuid();

        var id = WebhookDelivery.IdFor(evt, subscription);

        Assert.Equal(id, WebhookDelivery.IdFor(evt, subscription));
        Assert.NotEqual(id, WebhookDelivery.IdFor(evt, Guid.NewGuid()));
        Assert.NotEqual(id, WebhookDelivery.IdFor(Guid.CreateVersion7(occurred), subscription));
        Assert.NotEqual(id, WebhookDelivery.IdFor(subscription, evt));
        var ids = Enumerable.Range(0, 10_000).Select(_ => WebhookDelivery.IdFor(evt, Guid.NewGuid())).ToHashSet();
        Assert.Equal(10_000, ids.Count);
    }

    [Fact]
    public void The_id_is_a_uuid_version_8_that_starts_with_its_events_id()
    {
        var occurred = new DateTime(2026, 12, 6, 8, 30, 15, 123, DateTimeKind.Utc);
        var id = WebhookDelivery.IdFor(Guid.CreateVersion7(occurred), Guid.NewGuid());

        Assert.Equal(8, id.Version);
        Assert.Equal(0b10, id.Variant >> 2);
        var bytes = id.ToByteArray(bigEndian: true);
        var millis = ((long)bytes[0] << 40) | ((long)bytes[1] << 32) | ((long)bytes[2] << 24) | ((long)bytes[3] << 16) | ((long)bytes[4] << 8) | bytes[5];
        Assert.Equal(new DateTimeOffset(occurred).ToUnixTimeMilliseconds(), millis);
        // Later events' deliveries sort after earlier ones', and an event's deliveries together, as the primary key's
        // index takes them.
        var later = WebhookDelivery.IdFor(Guid.CreateVersion7(occurred.AddMilliseconds(1)), Guid.NewGuid());
        Assert.True(string.CompareOrdinal(id.ToString(), later.ToString()) < 0);
        var evt = Guid.CreateVersion7(occurred);
        var prefixes = Enumerable.Range(0, 100).Select(_ => WebhookDelivery.IdFor(evt, Guid.NewGuid()).ToString()[..18]).Distinct();
        Assert.Equal(evt.ToString()[..18].Remove(14, 1).Insert(14, "8"), Assert.Single(prefixes));
    }
}
