using System.Net;
using System.Text;
using CsvHelper;
using Gymwire.Features.Exports;
using Gymwire.Features.Members;
using Gymwire.Tests.Dashboard;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Exports;

public abstract class ExportTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : ExportTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : ExportTests(f), IClassFixture<PostgresGymwire>;

    private sealed record Csv(string[] Headers, List<Dictionary<string, string>> Rows, byte[] Bytes);

    private static async Task<Csv> ReadCsvAsync(HttpResponseMessage response)
    {
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(HttpStatusCode.OK == response.StatusCode, Encoding.UTF8.GetString(bytes));
        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("utf-8", response.Content.Headers.ContentType?.CharSet);
        using var reader = CsvReader.Create(new MemoryStream(bytes), new CsvReaderOptions { Separator = ',' }, leaveOpen: false);
        var rows = new List<Dictionary<string, string>>();
        while (reader.Read())
        {
            Assert.Equal(reader.Headers.Count, reader.FieldCount);
            rows.Add(reader.Headers.Select((h, i) => (h, i)).ToDictionary(x => x.h, x => reader.GetString(x.i)));
        }
        return new Csv([.. reader.Headers], rows, bytes);
    }

    private async Task<(TestGym Gym, HttpClient Owner)> GymWithHistoryAsync()
    {
        var gym = await fx.CreateGymAsync();
        var owner = gym.Owner();
        var plan = await (await owner.PostJsonAsync("/api/gym/plans", new { name = "Gold, \"unlimited\"", price_cents = 9900 })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Ana Silva", email = "ana@example.com", phone = "+15551234567", user_id = "user_ana" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "=HYPERLINK(\"x\")", user_id = "user_evil" })).AssertStatusAsync(HttpStatusCode.Created);
        var first = await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_ana", amount_cents = 9900, plan_id = plan.GetProperty("id").GetGuid() })).AssertStatusAsync(HttpStatusCode.Created);
        fx.Clock.Advance(TimeSpan.FromDays(1));
        await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_evil", amount_cents = 1050 })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_ana", amount_cents = 5000, status = "failed", failure_reason = "card_declined" })).AssertStatusAsync(HttpStatusCode.Created);
        fx.Clock.Advance(TimeSpan.FromDays(1));
        await (await owner.PostAsync($"/api/gym/payments/{first.GetProperty("id").GetString()}/refund", null)).AssertStatusAsync(HttpStatusCode.OK);
        return (gym, owner);
    }

    private string Day(int offset) => fx.Clock.GetUtcNow().AddDays(offset).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task Amounts_of_zero_and_three_decimal_currencies_have_their_own_decimals()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Yui", user_id = "user_yui" })).AssertStatusAsync(HttpStatusCode.Created);
        foreach (var (cents, currency) in new[] { (1000, "jpy"), (12345, "kwd"), (1050, "usd") })
        {
            await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_yui", amount_cents = cents, currency })).AssertStatusAsync(HttpStatusCode.Created);
        }
        var csv = await ReadCsvAsync(await owner.GetAsync($"/api/gym/exports/payments.csv?from={Day(0)}&to={Day(0)}"));
        Assert.Equal(["10.50 USD", "1000 JPY", "12.345 KWD"], csv.Rows.Select(r => $"{r["Amount"]} {r["Currency"]}").Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Payments_export_is_valid_csv_with_accounting_columns_and_totals()
    {
        var (_, owner) = await GymWithHistoryAsync();
        var response = await owner.GetAsync($"/api/gym/exports/payments.csv?from={Day(-2)}&to={Day(0)}");
        var csv = await ReadCsvAsync(response);
        Assert.Equal(["Date", "Customer", "Email", "Description", "Amount", "Currency", "Status", "Reference"], csv.Headers);
        Assert.Equal($"payments-{Day(-2)}-to-{Day(0)}.csv", response.Content.Headers.ContentDisposition?.FileNameStar ?? response.Content.Headers.ContentDisposition?.FileName?.Trim('"'));
        // UTF-8 with a byte-order mark, CRLF record endings (RFC 4180).
        Assert.Equal(new byte[] { 0xEF, 0xBB, 0xBF }, csv.Bytes[..3]);
        var text = Encoding.UTF8.GetString(csv.Bytes);
        Assert.Equal(text.Split('\n').Length - 1, text.Split("\r\n").Length - 1);

        Assert.Equal(2, csv.Rows.Count); // the failed payment is not money received
        Assert.Equal(109.50m, csv.Rows.Sum(r => decimal.Parse(r["Amount"], System.Globalization.CultureInfo.InvariantCulture)));
        var ana = csv.Rows[0];
        Assert.Equal(Day(-2), ana["Date"]);
        Assert.Equal("Ana Silva", ana["Customer"]);
        Assert.Equal("ana@example.com", ana["Email"]);
        Assert.Equal("Membership payment: Gold, \"unlimited\"", ana["Description"]);
        Assert.Equal("99.00", ana["Amount"]);
        Assert.Equal("USD", ana["Currency"]);
        Assert.Equal("refunded", ana["Status"]);
        Assert.True(Guid.TryParse(ana["Reference"], out _));
        Assert.Equal("10.50", csv.Rows[1]["Amount"]);
        Assert.Equal("'=HYPERLINK(\"x\")", csv.Rows[1]["Customer"]); // never a live formula in a spreadsheet

        var oneDay = await ReadCsvAsync(await owner.GetAsync($"/api/gym/exports/payments.csv?from={Day(-1)}&to={Day(-1)}"));
        Assert.Equal("10.50", Assert.Single(oneDay.Rows)["Amount"]);
    }

    [Fact]
    public async Task Refunds_export_has_negative_amounts_on_the_refund_date()
    {
        var (_, owner) = await GymWithHistoryAsync();
        var csv = await ReadCsvAsync(await owner.GetAsync($"/api/gym/exports/refunds.csv?from={Day(0)}&to={Day(0)}"));
        Assert.Equal(AccountingExports.PaymentColumns, csv.Headers);
        var refund = Assert.Single(csv.Rows);
        Assert.Equal("-99.00", refund["Amount"]);
        Assert.Equal(Day(0), refund["Date"]);
        Assert.StartsWith("Refund: Membership payment", refund["Description"], StringComparison.Ordinal);
        Assert.Empty((await ReadCsvAsync(await owner.GetAsync($"/api/gym/exports/refunds.csv?from={Day(-2)}&to={Day(-1)}"))).Rows);
    }

    [Fact]
    public async Task Members_export_lists_who_was_a_member_in_the_range_and_a_read_key_may_download_it()
    {
        var (gym, owner) = await GymWithHistoryAsync();
        var key = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Accountant", scopes = new[] { "read" } })).AssertStatusAsync(HttpStatusCode.Created);
        var csv = await ReadCsvAsync(await fx.Client(key.GetProperty("key").GetString()).GetAsync($"/api/gym/exports/members.csv?from={Day(-2)}&to={Day(0)}"));
        Assert.Equal(["Name", "Email", "Phone", "Role", "Joined", "Left"], csv.Headers);
        Assert.Equal(2, csv.Rows.Count);
        var ana = Assert.Single(csv.Rows, r => r["Name"] == "Ana Silva");
        Assert.Equal("'+15551234567", ana["Phone"]); // text, as a spreadsheet shows it: see Phone_numbers_…
        Assert.Equal("member", ana["Role"]);
        Assert.Equal(Day(-2), ana["Joined"]);
        Assert.Equal("", ana["Left"]);
        Assert.Empty((await ReadCsvAsync(await owner.GetAsync("/api/gym/exports/members.csv?from=2020-01-01&to=2020-12-31"))).Rows);

        // Another gym sees only its own.
        var other = await fx.CreateGymAsync();
        Assert.Empty((await ReadCsvAsync(await other.Owner().GetAsync($"/api/gym/exports/members.csv?from={Day(-2)}&to={Day(0)}"))).Rows);
        _ = gym;
    }

    [Fact]
    public async Task Phone_numbers_are_text_in_the_csv_so_a_spreadsheet_neither_runs_nor_rounds_them()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Ana", user_id = "user_ana", phone = "+15551234567" })).AssertStatusAsync(HttpStatusCode.Created);
        // The API takes E.164 only; a number stored as written (an import, an older version) is text as well.
        await fx.WithDbAsync(db =>
        {
            db.Members.Add(new Member
            {
                Id = Guid.CreateVersion7(), GymId = gym.GymId, UserId = "user_bo", Name = "Bo", Phone = "07700900123", Role = MemberRoles.Member,
                JoinedAt = fx.Clock.GetUtcNow().UtcDateTime,
            });
            return db.SaveChangesAsync();
        });
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Cy", user_id = "user_cy" })).AssertStatusAsync(HttpStatusCode.Created);
        var csv = await ReadCsvAsync(await owner.GetAsync($"/api/gym/exports/members.csv?from={Day(0)}&to={Day(0)}"));
        // The bytes as a spreadsheet program reads them: a leading + is a formula (shown as 1.56E+10), and digits a
        // number (losing a leading zero); the apostrophe makes each cell text, as it does for formula-like names.
        var text = Encoding.UTF8.GetString(csv.Bytes);
        Assert.Contains($"\r\nAna,,'+15551234567,member,{Day(0)},\r\n", text, StringComparison.Ordinal);
        Assert.Contains($"\r\nBo,,'07700900123,member,{Day(0)},\r\n", text, StringComparison.Ordinal);
        Assert.Contains($"\r\nCy,,,member,{Day(0)},\r\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Someone_who_left_at_the_ranges_first_instant_is_not_in_the_members_export()
    {
        var gym = await fx.CreateGymAsync(); // in UTC: the range 2026-03-10 is [00:00, next 00:00) UTC
        var start = new DateTime(2026, 3, 10, 0, 0, 0, DateTimeKind.Utc);
        var end = start.AddDays(1);
        await fx.WithDbAsync(db =>
        {
            foreach (var (name, joined, left) in new (string, DateTime, DateTime?)[]
                     {
                         ("Left at the start", start.AddDays(-30), start),
                         // Joined a day after the other, so the export's order (by join time, then id) does not rest on two v7 ids of one millisecond.
                         ("Left a second in", start.AddDays(-29), start.AddSeconds(1)),
                         ("Joined at the start", start, null),
                         ("Joined a second before the end", end.AddSeconds(-1), null),
                         ("Joined at the end", end, null),
                     })
            {
                db.Members.Add(new Member
                {
                    Id = Guid.CreateVersion7(), GymId = gym.GymId, UserId = $"user_{Guid.NewGuid():N}", Name = name, Role = MemberRoles.Member,
                    JoinedAt = joined, LeftAt = left,
                });
            }
            return db.SaveChangesAsync();
        });
        using var owner = gym.Owner();
        // [start, end) as payments and refunds are cut: what happens at the end belongs to the next range, and leaving
        // at the start ended the membership before the range began.
        var csv = await ReadCsvAsync(await owner.GetAsync("/api/gym/exports/members.csv?from=2026-03-10&to=2026-03-10"));
        Assert.Equal(["Left a second in", "Joined at the start", "Joined a second before the end"], csv.Rows.Select(r => r["Name"]));
        var before = await ReadCsvAsync(await owner.GetAsync("/api/gym/exports/members.csv?from=2026-03-09&to=2026-03-09"));
        Assert.Equal(["Left at the start", "Left a second in"], before.Rows.Select(r => r["Name"]));
    }

    [Fact]
    public async Task QuickBooks_export_has_the_three_columns_of_its_bank_upload_with_signed_amounts()
    {
        var (_, owner) = await GymWithHistoryAsync();
        var response = await owner.GetAsync($"/api/gym/exports/quickbooks.csv?from={Day(-2)}&to={Day(0)}");
        var csv = await ReadCsvAsync(response);
        Assert.Equal($"quickbooks-{Day(-2)}-to-{Day(0)}.csv", response.Content.Headers.ContentDisposition?.FileNameStar ?? response.Content.Headers.ContentDisposition?.FileName?.Trim('"'));
        // QuickBooks Online's three-column layout, and no other column; dates month first unless asked otherwise.
        var text = Encoding.UTF8.GetString(csv.Bytes);
        Assert.StartsWith("\uFEFFDate,Description,Amount\r\n", text, StringComparison.Ordinal);
        static string Us(DateTimeOffset d) => d.ToString("MM/dd/yyyy", System.Globalization.CultureInfo.InvariantCulture);
        static string Uk(DateTimeOffset d) => d.ToString("dd/MM/yyyy", System.Globalization.CultureInfo.InvariantCulture);
        var now = fx.Clock.GetUtcNow();
        Assert.Equal(
            [
                (Us(now.AddDays(-2)), "Ana Silva: Membership payment: Gold, \"unlimited\"", "99.00"),
                (Us(now.AddDays(-1)), "'=HYPERLINK(\"x\"): Membership payment", "10.50"),
                (Us(now), "Refund to Ana Silva: Membership payment: Gold, \"unlimited\"", "-99.00"),
            ],
            csv.Rows.Select(r => (r["Date"], r["Description"], r["Amount"])));

        var dayFirst = await ReadCsvAsync(await owner.GetAsync($"/api/gym/exports/quickbooks.csv?from={Day(-2)}&to={Day(0)}&date_order=dmy"));
        Assert.Equal([Uk(now.AddDays(-2)), Uk(now.AddDays(-1)), Uk(now)], dayFirst.Rows.Select(r => r["Date"]));
        var message = await (await owner.GetAsync($"/api/gym/exports/quickbooks.csv?from={Day(-2)}&to={Day(0)}&date_order=ymd")).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains("'date_order' must be mdy", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "'from' and 'to' are required")]
    [InlineData("?from=2026-04-01", "'from' and 'to' are required")]
    [InlineData("?from=2026-13-01&to=2026-12-31", "'from' must be a date")]
    [InlineData("?from=2026-04-01&to=04/30/2026", "'to' must be a date")]
    [InlineData("?from=2026-05-01&to=2026-04-01", "'from' must not be after 'to'")]
    [InlineData("?from=2025-01-01&to=2026-01-02", "at most 366 days")]
    [InlineData("?from=9999-12-01&to=9999-12-31", "'to' must be before 9999-12-31")]
    [InlineData("?from=9999-12-31&to=9999-12-31", "'to' must be before 9999-12-31")]
    public async Task Bad_ranges_are_400_in_the_error_shape(string query, string expected)
    {
        var gym = await fx.CreateGymAsync();
        foreach (var kind in new[] { "payments", "refunds", "members", "quickbooks" })
        {
            var message = await (await gym.Owner().GetAsync($"/api/gym/exports/{kind}.csv{query}")).AssertErrorAsync(HttpStatusCode.BadRequest);
            Assert.Contains(expected, message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task The_last_and_first_supported_days_export_without_breaking_the_stream()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        foreach (var kind in new[] { "payments", "refunds", "members", "quickbooks" })
        {
            Assert.Empty((await ReadCsvAsync(await owner.GetAsync($"/api/gym/exports/{kind}.csv?from=9999-12-30&to=9999-12-30"))).Rows);
            Assert.Empty((await ReadCsvAsync(await owner.GetAsync($"/api/gym/exports/{kind}.csv?from=0001-01-01&to=0001-01-01"))).Rows);
        }
    }

    [Fact]
    public async Task A_leap_year_is_366_days_and_allowed()
    {
        var gym = await fx.CreateGymAsync();
        Assert.Empty((await ReadCsvAsync(await gym.Owner().GetAsync("/api/gym/exports/payments.csv?from=2024-01-01&to=2024-12-31"))).Rows);
        await (await fx.Client().GetAsync("/api/gym/exports/payments.csv?from=2024-01-01&to=2024-12-31")).AssertErrorAsync(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task The_dashboard_exports_page_downloads_the_same_csv_for_the_signed_in_owner()
    {
        var (gym, owner) = await GymWithHistoryAsync();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var page = await browser.GetPageAsync("/exports");
        Assert.Contains("Download payments CSV", page, StringComparison.Ordinal);
        var query = $"?handler=download&from={Day(-2)}&to={Day(0)}";
        var fromPage = await ReadCsvAsync(await browser.GetAsync($"/exports{query}&kind=payments"));
        var fromApi = await ReadCsvAsync(await owner.GetAsync($"/api/gym/exports/payments.csv?from={Day(-2)}&to={Day(0)}"));
        Assert.Equal(Encoding.UTF8.GetString(fromApi.Bytes), Encoding.UTF8.GetString(fromPage.Bytes));
        Assert.Contains("Download QuickBooks CSV", page, StringComparison.Ordinal);
        var quickBooksFromPage = await ReadCsvAsync(await browser.GetAsync($"/exports{query}&kind=quickbooks&date_order=dmy"));
        var quickBooksFromApi = await ReadCsvAsync(await owner.GetAsync($"/api/gym/exports/quickbooks.csv?from={Day(-2)}&to={Day(0)}&date_order=dmy"));
        Assert.Equal(Encoding.UTF8.GetString(quickBooksFromApi.Bytes), Encoding.UTF8.GetString(quickBooksFromPage.Bytes));
        // A bad range answers 400 with the form and the reason, never a broken or empty download.
        var invalid = await browser.GetAsync($"/exports?handler=download&from={Day(0)}&to={Day(-2)}&kind=payments");
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Contains("From must not be after To", await invalid.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var farFuture = await browser.GetAsync("/exports?handler=download&from=9999-12-31&to=9999-12-31&kind=payments");
        Assert.Equal(HttpStatusCode.BadRequest, farFuture.StatusCode);
        Assert.Contains("To must be before 9999-12-31", await farFuture.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var anonymous = new DashboardClient(fx);
        var signedOut = await anonymous.GetAsync($"/exports{query}&kind=payments");
        Assert.Equal(HttpStatusCode.Redirect, signedOut.StatusCode);
        Assert.Contains("/login", signedOut.Headers.Location!.OriginalString, StringComparison.Ordinal);
    }
}
