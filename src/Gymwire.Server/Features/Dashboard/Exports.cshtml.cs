using Gymwire.Features.Exports;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard;

/// <summary>
/// The accounting exports for the signed-in owner. The API's export endpoints take bearer tokens only (the dashboard
/// cookie never reaches the API), so the page streams the same CSV itself. Dates are days of the gym's time zone.
/// </summary>
public sealed class ExportsModel(GymwireDbContext db, TimeProvider clock, GymTime time) : PageModel
{
    [BindProperty(SupportsGet = true)]
    public string? From { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? To { get; set; }

    public void OnGet() => DefaultToLastMonth();

    /// <summary>The QuickBooks file's dates: <c>mdy</c> (MM/dd/yyyy, the default) or <c>dmy</c> (dd/MM/yyyy).</summary>
    [BindProperty(SupportsGet = true, Name = "date_order")]
    public string? DateOrder { get; set; }

    public async Task<IActionResult> OnGetDownloadAsync(string? kind, CancellationToken ct)
    {
        if (!Enum.TryParse<ExportKind>(kind, ignoreCase: true, out var exportKind) || !Enum.IsDefined(exportKind) || int.TryParse(kind, out _))
        {
            ModelState.AddModelError(string.Empty, "Choose payments, refunds, members or QuickBooks.");
            return new PageResult { StatusCode = StatusCodes.Status400BadRequest };
        }
        if (AccountingExports.ParseDateOrder(DateOrder) is not { } dates)
        {
            ModelState.AddModelError(string.Empty, "Choose the QuickBooks dates as month first or day first.");
            return new PageResult { StatusCode = StatusCodes.Status400BadRequest };
        }
        if (ExportRange.TryParse(From, To, time.Zone, out var range) is { } error)
        {
            // The form again with the reason, as a 400: the range is checked before anything is written.
            ModelState.AddModelError(string.Empty, error.Replace("'from'", "From", StringComparison.Ordinal).Replace("'to'", "To", StringComparison.Ordinal) + ".");
            return new PageResult { StatusCode = StatusCodes.Status400BadRequest };
        }
        var buffer = new MemoryStream();
        await AccountingExports.WriteAsync(db, User.GetGymId(), exportKind, range, dates, buffer, ct);
        buffer.Position = 0;
        return File(buffer, ExportEndpoints.CsvContentType, AccountingExports.FileName(exportKind, range));
    }

    private void DefaultToLastMonth()
    {
        var today = time.Today(clock);
        var firstOfThisMonth = new DateOnly(today.Year, today.Month, 1);
        From ??= firstOfThisMonth.AddMonths(-1).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        To ??= firstOfThisMonth.AddDays(-1).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
    }
}
