using Gymwire.Data;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The upgrade that leaves test sends out of the health panel's counts (DeliveryCountsWithoutTests) counts the
/// deliveries already there again, without their test sends, and later test sends are not counted.
/// </summary>
public abstract class DeliveryCountsUpgradeTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : DeliveryCountsUpgradeTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : DeliveryCountsUpgradeTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Test_sends_counted_before_the_upgrade_are_counted_out_and_later_ones_never_counted()
    {
        await using var schema = await SchemaBeforeUpgrade.CreateAsync(fx, "SmsUncertainSince");
        var app = schema.App;
        var gymId = await schema.CreateGymAsync();
        var created = new DateTime(2026, 12, 1, 10, 0, 0, DateTimeKind.Utc);
        Guid hookId;
        WebhookDelivery Delivery(Guid gymId, bool isTest, string status) => new()
        {
            Id = Guid.NewGuid(), GymId = gymId, SubscriptionId = hookId, Event = "member.joined", Payload = "{}", Status = status,
            IsTest = isTest, CreatedAt = created, AttemptCount = 1, LastAttemptAt = created,
        };
        async Task<(int Delivered, int Undeliverable)> CountsAsync()
        {
            await using var scope = app.Services.CreateAsyncScope();
            var counts = await scope.ServiceProvider.GetRequiredService<GymwireDbContext>().DeliveryCounts.AsNoTracking()
                .Where(c => c.SubscriptionId == hookId).ToListAsync();
            return (counts.Sum(c => c.Delivered), counts.Sum(c => c.Undeliverable));
        }

        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            hookId = Guid.NewGuid();
            db.WebhookSubscriptions.Add(new WebhookSubscription
            {
                Id = hookId, GymId = gymId, Url = "https://hooks.example.com/upgrade", SecretProtected = "x", CreatedAt = created, UpdatedAt = created,
            });
            db.WebhookDeliveries.AddRange(Delivery(gymId, isTest: false, DeliveryStatus.Delivered), Delivery(gymId, isTest: true, DeliveryStatus.Undeliverable));
            await db.SaveChangesAsync();
        }
        Assert.Equal((1, 1), await CountsAsync());

        await schema.UpgradeAsync();
        Assert.Equal((1, 0), await CountsAsync());

        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            db.WebhookDeliveries.AddRange(Delivery(gymId, isTest: false, DeliveryStatus.Undeliverable), Delivery(gymId, isTest: true, DeliveryStatus.Delivered));
            await db.SaveChangesAsync();
            await db.WebhookDeliveries.Where(d => d.SubscriptionId == hookId && d.IsTest).ExecuteUpdateAsync(u => u.SetProperty(d => d.Status, DeliveryStatus.Pending));
            await db.WebhookDeliveries.Where(d => d.SubscriptionId == hookId && d.IsTest).ExecuteDeleteAsync();
        }
        Assert.Equal((1, 1), await CountsAsync());
    }
}
