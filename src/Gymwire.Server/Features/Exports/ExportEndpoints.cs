namespace Gymwire.Features.Exports;

/// <summary>Accounting exports: CSV of payments, refunds and members for a date range, for QuickBooks, Xero and spreadsheets.</summary>
public static class ExportEndpoints
{
    public const string CsvContentType = "text/csv; charset=utf-8";

    public static IEndpointRouteBuilder MapExports(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/gym/exports").WithTags("Exports").RequireAuthorization(Policies.Read);
        group.MapGet("/payments.csv", Payments).Produces<string>(StatusCodes.Status200OK, "text/csv")
            .WithSummary("Payments received in a date range, as CSV (Date, Customer, Email, Description, Amount, Currency, Status, Reference)");
        group.MapGet("/refunds.csv", Refunds).Produces<string>(StatusCodes.Status200OK, "text/csv")
            .WithSummary("Refunds made in a date range, as CSV with negative amounts");
        group.MapGet("/members.csv", Members).Produces<string>(StatusCodes.Status200OK, "text/csv")
            .WithSummary("Members during a date range, as CSV (Name, Email, Phone, Role, Joined, Left)");
        group.MapGet("/quickbooks.csv", QuickBooks).Produces<string>(StatusCodes.Status200OK, "text/csv")
            .WithSummary("Payments and refunds in a date range for QuickBooks Online's bank upload (Date, Description, Amount); date_order mdy (default) or dmy");
        return app;
    }

    internal static Task<Results<PushStreamHttpResult, BadRequest<ErrorResponse>>> QuickBooks(
        string? from, string? to, [FromQuery(Name = "date_order")] string? dateOrder, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct) =>
        AccountingExports.ParseDateOrder(dateOrder) is { } dates
            ? Export(ExportKind.QuickBooks, dates, from, to, user, db, ct)
            : Task.FromResult<Results<PushStreamHttpResult, BadRequest<ErrorResponse>>>(ApiErrors.BadRequest("'date_order' must be mdy (MM/dd/yyyy) or dmy (dd/MM/yyyy)"));

    internal static Task<Results<PushStreamHttpResult, BadRequest<ErrorResponse>>> Payments(string? from, string? to, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct) =>
        Export(ExportKind.Payments, QuickBooksDates.MonthFirst, from, to, user, db, ct);

    internal static Task<Results<PushStreamHttpResult, BadRequest<ErrorResponse>>> Refunds(string? from, string? to, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct) =>
        Export(ExportKind.Refunds, QuickBooksDates.MonthFirst, from, to, user, db, ct);

    internal static Task<Results<PushStreamHttpResult, BadRequest<ErrorResponse>>> Members(string? from, string? to, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct) =>
        Export(ExportKind.Members, QuickBooksDates.MonthFirst, from, to, user, db, ct);

    private static async Task<Results<PushStreamHttpResult, BadRequest<ErrorResponse>>> Export(
        ExportKind kind, QuickBooksDates dates, string? from, string? to, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        // Days are the gym's: from its midnight on 'from' to its midnight after 'to'.
        var zone = await GymTimeZones.OfGymAsync(db, gymId, ct);
        if (ExportRange.TryParse(from, to, zone, out var range) is { } error)
        {
            return ApiErrors.BadRequest(error);
        }
        return TypedResults.Stream(stream => AccountingExports.WriteAsync(db, gymId, kind, range, dates, stream, ct),
            CsvContentType, AccountingExports.FileName(kind, range));
    }
}
