using Gymwire.Data;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Email;

/// <summary>
/// Schedules saved before the owners became a choice of their own: the form stored the owners' addresses it offered,
/// so a schedule whose addresses are exactly the owners' goes to the owners at send time after the upgrade.
/// </summary>
public abstract class ReportRecipientsUpgradeTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : ReportRecipientsUpgradeTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : ReportRecipientsUpgradeTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Schedules_from_before_the_upgrade_keep_their_meaning_and_the_owners_list_becomes_the_owners()
    {
        await using var schema = await SchemaBeforeUpgrade.CreateAsync(fx, "OwnerSessionSecurityStamp");
        var app = schema.App;
        var now = new DateTime(2026, 4, 16, 0, 0, 0, DateTimeKind.Utc);
        var failedAt = now.AddHours(-1);
        var gyms = new Dictionary<string, (Guid Id, string Owner)>();
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            // The previous schema's rows: recipients null (the owners), the owner's address as the form saved it (in
            // other capitals), the owner and a bookkeeper, and a bookkeeper only; the last with a failure's time and
            // no reason, as a send after a failure left it.
            foreach (var (name, recipients, lastFailureAt) in new (string, Func<string, string?>, DateTime?)[]
                     {
                         ("none", _ => null, null),
                         ("owner", owner => owner.ToUpperInvariant(), null),
                         ("owner-and-books", owner => $"{owner}, books@example.com", null),
                         ("books", _ => "books@example.com", failedAt),
                     })
            {
                var owner = $"{name}-{Guid.NewGuid():N}@example.com";
                var gymId = await schema.CreateGymAsync($"Gym {name}", owner);
                gyms[name] = (gymId, owner);
                var id = schema.Key(gymId);
                var list = recipients(owner);
                await db.Database.ExecuteSqlAsync($"""
                    INSERT INTO report_schedules (gym_id, frequency, reported_through, recipients, format, created_at, last_sent_at, last_failure_at)
                    VALUES ({id}, 'daily', {now}, {list}, 'csv', {now}, {now}, {lastFailureAt})
                    """);
            }
        }

        await schema.UpgradeAsync();

        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            async Task<(bool, string?, DateTime?)> After(string name)
            {
                var s = await db.ReportSchedules.AsNoTracking().SingleAsync(x => x.GymId == gyms[name].Id);
                return (s.SendToOwners, s.Recipients, s.LastFailureAt);
            }
            Assert.Equal((true, (string?)null, (DateTime?)null), await After("none"));
            Assert.Equal((true, (string?)null, (DateTime?)null), await After("owner"));
            Assert.Equal((false, $"{gyms["owner-and-books"].Owner}, books@example.com", (DateTime?)null), await After("owner-and-books"));
            Assert.Equal((false, "books@example.com", (DateTime?)null), await After("books"));
        }
    }
}
