using Gymwire.Data;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Sms;

/// <summary>
/// Before the look-up for an earlier attempt left out SIDs other messages carried, two messages could be recorded with
/// one Twilio message. The upgrade that makes the SID unique (status callbacks find their message by it) keeps it on the
/// oldest of them and clears it on the others, instead of failing.
/// </summary>
public abstract class SmsProviderMessageIdUpgradeTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : SmsProviderMessageIdUpgradeTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : SmsProviderMessageIdUpgradeTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Messages_sharing_a_sid_keep_it_on_the_oldest_only_and_the_sid_is_unique_afterwards()
    {
        await using var schema = await SchemaBeforeUpgrade.CreateAsync(fx, "SmsUncertainSince");
        var gymId = await schema.CreateGymAsync();
        var created = new DateTime(2026, 12, 1, 10, 0, 0, DateTimeKind.Utc);
        const string shared = "SM00000000000000000000000000000042";
        const string own = "SM00000000000000000000000000000043";
        var rows = new Dictionary<string, (Guid Id, string? Expected, bool Noted)>();
        await using (var scope = schema.App.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            // Two at the same time: of those, the lower id keeps it.
            var same = created.AddMinutes(5);
            var (low, high) = (Guid.Parse("00000000-0000-0000-0000-00000000000a"), Guid.Parse("00000000-0000-0000-0000-00000000000b"));
            foreach (var (name, id, sid, at, expected, noted) in new (string, Guid, string?, DateTime, string?, bool)[]
                     {
                         ("later taker", Guid.NewGuid(), shared, created.AddMinutes(10), null, true),
                         ("oldest", Guid.NewGuid(), shared, created, shared, false),
                         ("taker at one time, higher id", high, own, same.AddSeconds(1), null, true),
                         ("owner at one time, lower id", low, own, same.AddSeconds(1), own, false),
                         ("own sid", Guid.NewGuid(), "SM00000000000000000000000000000044", created, "SM00000000000000000000000000000044", false),
                         ("no sid", Guid.NewGuid(), null, created, null, false),
                     })
            {
                rows[name] = (id, expected, noted);
                await db.Database.ExecuteSqlAsync($"""
                    INSERT INTO sms_messages (id, gym_id, phone, message, status, provider_message_id, attempts, last_attempt_at, created_at, sent_at)
                    VALUES ({schema.Key(id)}, {schema.Key(gymId)}, '+15551234567', {name}, {(sid is null ? "queued" : "sent")}, {sid}, 1, {at}, {at}, {(sid is null ? (DateTime?)null : at)})
                    """);
            }
        }

        await schema.UpgradeAsync();

        await using (var scope = schema.App.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            var stored = await db.SmsMessages.AsNoTracking().Where(m => m.GymId == gymId).ToDictionaryAsync(m => m.Id);
            Assert.Equal(rows.ToDictionary(r => r.Key, r => r.Value.Expected), rows.ToDictionary(r => r.Key, r => stored[r.Value.Id].ProviderMessageId));
            Assert.Equal(rows.ToDictionary(r => r.Key, r => r.Value.Noted),
                rows.ToDictionary(r => r.Key, r => stored[r.Value.Id].Error?.Contains("delivery status is unknown", StringComparison.Ordinal) == true));
            // Nothing else about them changed: they were sent.
            Assert.Equal(5, stored.Values.Count(m => m.Status == "sent"));

            // One SID is one message from now on.
            var twin = stored[rows["oldest"].Id];
            db.SmsMessages.Add(new Gymwire.Features.Sms.SmsMessage
            {
                Id = Guid.NewGuid(), GymId = gymId, Phone = twin.Phone, Message = "twin", Status = "sent", ProviderMessageId = shared, CreatedAt = created,
            });
            var violation = await Assert.ThrowsAsync<DbUpdateException>(() => db.SaveChangesAsync());
            Assert.True(Gymwire.Infrastructure.ErrorHandling.IsUniqueViolation(violation), violation.ToString());
        }
    }
}
