using Gymwire.Data;
using Gymwire.Features.Gyms;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

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
        var builder = GymwireApp.CreateBuilder(fx.Arguments(await fx.CreateScratchDatabaseAsync()), b => b.Logging.ClearProviders());
        await using var app = GymwireApp.Build(builder);
        var now = new DateTime(2026, 4, 16, 0, 0, 0, DateTimeKind.Utc);
        var failedAt = now.AddHours(-1);
        var gyms = new Dictionary<string, (Guid Id, string Owner)>();
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            await db.GetService<IMigrator>().MigrateAsync("OwnerSessionSecurityStamp");
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
                var (gym, _, error) = await scope.ServiceProvider.GetRequiredService<GymProvisioning>()
                    .CreateAsync($"Gym {name}", owner, "correct-horse-battery", CancellationToken.None);
                Assert.True(gym is not null, error);
                gyms[name] = (gym.GymId, owner);
                // SQLite keeps ids as upper-case text.
                object id = fx.Store == Store.Sqlite ? gym.GymId.ToString().ToUpperInvariant() : gym.GymId;
                var list = recipients(owner);
                await db.Database.ExecuteSqlAsync($"""
                    INSERT INTO report_schedules (gym_id, frequency, reported_through, recipients, format, created_at, last_sent_at, last_failure_at)
                    VALUES ({id}, 'daily', {now}, {list}, 'csv', {now}, {now}, {lastFailureAt})
                    """);
            }
        }

        await DatabaseSetup.MigrateAsync(app.Services);

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
