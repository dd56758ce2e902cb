using Gymwire.Data;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Sms;

/// <summary>
/// Messages attempted before the upgrade that added <c>uncertain_since</c>: any of their attempts may have reached Twilio
/// unrecorded, so the upgrade marks them uncertain from their creation and their next send looks them up first.
/// </summary>
public abstract class SmsUncertainSinceUpgradeTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : SmsUncertainSinceUpgradeTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : SmsUncertainSinceUpgradeTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Messages_attempted_before_the_upgrade_are_uncertain_from_their_creation_and_others_are_not()
    {
        await using var schema = await SchemaBeforeUpgrade.CreateAsync(fx, "ReportQuickBooksDateOrder");
        var gymId = await schema.CreateGymAsync();
        var created = new DateTime(2026, 12, 1, 10, 0, 0, DateTimeKind.Utc);
        var attempted = created.AddMinutes(5);
        var rows = new Dictionary<string, (Guid Id, DateTime? Expected)>();
        await using (var scope = schema.App.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            foreach (var (name, status, attempts, lastAttemptAt, expected) in new (string, string, int, DateTime?, DateTime?)[]
                     {
                         ("retrying", "queued", 1, attempted, created),
                         ("failed", "failed", 3, attempted, created),
                         // Queued again by the owner after a failure: the counter starts again, the attempts happened.
                         ("retried by the owner", "queued", 0, attempted, created),
                         ("never tried", "queued", 0, null, null),
                         ("sent", "sent", 1, attempted, null),
                     })
            {
                var id = Guid.NewGuid();
                rows[name] = (id, expected);
                await db.Database.ExecuteSqlAsync($"""
                    INSERT INTO sms_messages (id, gym_id, phone, message, status, attempts, last_attempt_at, created_at)
                    VALUES ({schema.Key(id)}, {schema.Key(gymId)}, '+15551234567', {name}, {status}, {attempts}, {lastAttemptAt}, {created})
                    """);
            }
        }

        await schema.UpgradeAsync();

        await using (var scope = schema.App.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            var stored = await db.SmsMessages.AsNoTracking().Where(m => m.GymId == gymId).ToDictionaryAsync(m => m.Id, m => m.UncertainSince);
            Assert.Equal(rows.ToDictionary(r => r.Key, r => r.Value.Expected), rows.ToDictionary(r => r.Key, r => stored[r.Value.Id]));
        }
    }
}
