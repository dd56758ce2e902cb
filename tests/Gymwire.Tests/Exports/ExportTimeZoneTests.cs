using System.Net;
using System.Text;
using CsvHelper;
using Gymwire.Features.Gyms;
using Gymwire.Features.Payments;
using Gymwire.Tests.Dashboard;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Exports;

/// <summary>Exports cut days at the gym's midnight, in its time zone, on days when the clocks change too.</summary>
public abstract class ExportTimeZoneTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : ExportTimeZoneTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : ExportTimeZoneTests(f), IClassFixture<PostgresGymwire>;

    /// <summary>A gym in <paramref name="zone"/> with one paid payment (in cents, to tell them apart) at each UTC instant.</summary>
    private async Task<TestGym> GymAsync(string zone, params (DateTime At, int Cents)[] payments)
    {
        var gym = await fx.CreateGymAsync();
        await fx.WithDbAsync(async db =>
        {
            await db.Gyms.Where(g => g.Id == gym.GymId).ExecuteUpdateAsync(s => s.SetProperty(g => g.TimeZone, zone));
            foreach (var (at, cents) in payments)
            {
                db.Payments.Add(new Payment
                {
                    Id = Guid.CreateVersion7(), GymId = gym.GymId, UserId = $"user_{cents}", AmountCents = cents, Currency = "usd",
                    Status = PaymentStatuses.Paid, CreatedAt = DateTime.SpecifyKind(at, DateTimeKind.Utc),
                });
            }
            return await db.SaveChangesAsync();
        });
        return gym;
    }

    private static async Task<List<(string Date, string Amount)>> RowsAsync(HttpResponseMessage response)
    {
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, Encoding.UTF8.GetString(bytes));
        using var reader = CsvReader.Create(new MemoryStream(bytes), new CsvReaderOptions { Separator = ',' }, leaveOpen: false);
        var rows = new List<(string, string)>();
        while (reader.Read())
        {
            rows.Add((reader.GetString("Date"), reader.GetString("Amount")));
        }
        return rows;
    }

    private static DateTime Utc(int year, int month, int day, int hour, int minute) => new(year, month, day, hour, minute, 0, DateTimeKind.Utc);

    [Fact]
    public async Task An_event_at_23_30_local_on_the_spring_forward_day_is_in_that_local_day_not_the_UTC_one()
    {
        // New York, 8 March 2026: clocks go from 02:00 EST (UTC-5) to 03:00 EDT (UTC-4); the day has 23 hours.
        var gym = await GymAsync("America/New_York",
            (Utc(2026, 3, 8, 4, 30), 101),  // 23:30 EST on the 7th: UTC already says the 8th
            (Utc(2026, 3, 8, 5, 30), 102),  // 00:30 EST on the 8th
            (Utc(2026, 3, 9, 3, 30), 103),  // 23:30 EDT on the 8th: UTC says the 9th
            (Utc(2026, 3, 9, 4, 30), 104)); // 00:30 EDT on the 9th
        using var owner = gym.Owner();

        var day = await RowsAsync(await owner.GetAsync("/api/gym/exports/payments.csv?from=2026-03-08&to=2026-03-08"));
        Assert.Equal([("2026-03-08", "1.02"), ("2026-03-08", "1.03")], day);
        Assert.Equal([("2026-03-07", "1.01")], await RowsAsync(await owner.GetAsync("/api/gym/exports/payments.csv?from=2026-03-07&to=2026-03-07")));
        Assert.Equal([("2026-03-09", "1.04")], await RowsAsync(await owner.GetAsync("/api/gym/exports/payments.csv?from=2026-03-09&to=2026-03-09")));

        // The dashboard's Exports page streams the same days.
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        Assert.Equal(day, await RowsAsync(await browser.GetAsync("/exports?handler=download&kind=payments&from=2026-03-08&to=2026-03-08")));
    }

    [Fact]
    public async Task An_event_at_23_30_local_on_the_fall_back_day_is_in_that_local_day_of_25_hours()
    {
        // Berlin, 25 October 2026: clocks go from 03:00 CEST (UTC+2) back to 02:00 CET (UTC+1); the day has 25 hours.
        var gym = await GymAsync("Europe/Berlin",
            (Utc(2026, 10, 24, 21, 30), 201), // 23:30 CEST on the 24th
            (Utc(2026, 10, 24, 22, 30), 202), // 00:30 CEST on the 25th: UTC still says the 24th
            (Utc(2026, 10, 25, 0, 30), 203),  // 02:30 CEST, the first of the two
            (Utc(2026, 10, 25, 1, 30), 204),  // 02:30 CET, the second
            (Utc(2026, 10, 25, 22, 30), 205), // 23:30 CET on the 25th
            (Utc(2026, 10, 25, 23, 30), 206)); // 00:30 CET on the 26th: UTC still says the 25th
        using var owner = gym.Owner();

        Assert.Equal([("2026-10-25", "2.02"), ("2026-10-25", "2.03"), ("2026-10-25", "2.04"), ("2026-10-25", "2.05")],
            await RowsAsync(await owner.GetAsync("/api/gym/exports/payments.csv?from=2026-10-25&to=2026-10-25")));
        Assert.Equal([("2026-10-24", "2.01")], await RowsAsync(await owner.GetAsync("/api/gym/exports/payments.csv?from=2026-10-24&to=2026-10-24")));
        Assert.Equal([("2026-10-26", "2.06")], await RowsAsync(await owner.GetAsync("/api/gym/exports/payments.csv?from=2026-10-26&to=2026-10-26")));
    }

    [Fact]
    public async Task A_UTC_gym_keeps_UTC_days_and_the_first_and_last_days_still_export_in_any_zone()
    {
        var utc = await GymAsync(GymTimeZones.Utc, (Utc(2026, 3, 9, 3, 30), 301));
        Assert.Equal([("2026-03-09", "3.01")], await RowsAsync(await utc.Owner().GetAsync("/api/gym/exports/payments.csv?from=2026-03-09&to=2026-03-09")));

        // Ahead of UTC, the first day starts before the first representable instant; behind it, the last ends after the last.
        foreach (var zone in new[] { "Pacific/Kiritimati", "Pacific/Pago_Pago" })
        {
            var gym = await GymAsync(zone);
            using var owner = gym.Owner();
            foreach (var kind in new[] { "payments", "refunds", "members" })
            {
                Assert.Empty(await RowsAsync(await owner.GetAsync($"/api/gym/exports/{kind}.csv?from=0001-01-01&to=0001-01-02")));
                Assert.Empty(await RowsAsync(await owner.GetAsync($"/api/gym/exports/{kind}.csv?from=9999-12-29&to=9999-12-30")));
            }
        }
    }
}
