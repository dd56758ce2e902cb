using Gymwire.Features.Exports;
using Gymwire.Features.Payments;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;

namespace Gymwire.Tests.Exports;

/// <summary>
/// Scheduled reports find a period's refunds by when they were recorded. Most payments are never refunded, so the index
/// they use holds refunded payments only, and the reports' query still finds them through it.
/// </summary>
public abstract class RefundIndexTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : RefundIndexTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : RefundIndexTests(f), IClassFixture<PostgresGymwire>;

    private const string Index = "ix_payments_gym_id_refund_recorded_at";

    [Fact]
    public async Task The_index_of_recorded_refunds_holds_refunded_payments_only_and_the_reports_query_uses_it()
    {
        var gym = await fx.CreateGymAsync();
        var now = DateTime.UtcNow;
        await fx.WithDbAsync(async db =>
        {
            for (var i = 0; i < 200; i++)
            {
                var refunded = i % 50 == 0;
                db.Payments.Add(new Payment
                {
                    Id = Guid.CreateVersion7(), GymId = gym.GymId, UserId = $"user_{i}", AmountCents = 1000 + i, Currency = "usd",
                    Status = refunded ? PaymentStatuses.Refunded : PaymentStatuses.Paid, CreatedAt = now, RecordedAt = now,
                    RefundedAt = refunded ? now : null, RefundRecordedAt = refunded ? now : null,
                });
            }
            return await db.SaveChangesAsync();
        });

        var (entries, refunds, payments) = await fx.WithDbAsync(async db =>
        {
            await db.Database.ExecuteSqlRawAsync("ANALYZE payments");
            var entries = fx.Store == Store.Postgres
                ? await db.Database.SqlQueryRaw<long>($"SELECT reltuples::bigint AS \"Value\" FROM pg_class WHERE relname = '{Index}'").SingleAsync()
                // sqlite_stat1's first figure for an index is the number of its entries.
                : long.Parse((await db.Database.SqlQueryRaw<string>($"SELECT stat AS \"Value\" FROM sqlite_stat1 WHERE idx = '{Index}'").SingleAsync()).Split(' ')[0]);
            return (entries, await db.Payments.LongCountAsync(p => p.RefundRecordedAt != null), await db.Payments.LongCountAsync());
        });
        Assert.True(payments >= 200, $"{payments} payments");
        Assert.Equal(refunds, entries);

        var plan = await fx.WithDbAsync(async db =>
        {
            await db.Database.OpenConnectionAsync();
            await using var tx = await db.Database.BeginTransactionAsync();
            if (fx.Store == Store.Postgres)
            {
                // The table is small enough for a scan to be cheapest; the question is whether the index can serve the query.
                await db.Database.ExecuteSqlRawAsync("SET LOCAL enable_seqscan = off");
            }
            var range = new ExportRange(DateOnly.FromDateTime(now), DateOnly.FromDateTime(now), TimeZoneInfo.Utc);
            await using var command = AccountingExports.Refunded(db, gym.GymId, range, new RecordedPeriod(now.AddDays(-1), now.AddDays(1))).CreateDbCommand();
            command.CommandText = (fx.Store == Store.Postgres ? "EXPLAIN " : "EXPLAIN QUERY PLAN ") + command.CommandText;
            command.Transaction = tx.GetDbTransaction();
            var lines = new List<string>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                // PostgreSQL's plan is its only column; SQLite's detail is the last of four.
                lines.Add(reader.GetString(reader.FieldCount - 1));
            }
            return string.Join('\n', lines);
        });
        Assert.Contains(Index, plan);
    }
}
