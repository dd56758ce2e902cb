using Gymwire.Features.Dashboard.Integrations;

namespace Gymwire.Features.Exports;

/// <summary>The Accounting export tile: connected once the gym has a scheduled report; downloads need no set-up.</summary>
public sealed class AccountingExportStatus : IIntegrationStatusProvider
{
    public string Key => "accounting";
    public string Name => "Accounting export";
    public string Description => "CSV exports and scheduled reports for QuickBooks, Xero and other accounting platforms.";
    public int Order => 40;
    public string? ConfigureUrl => null;
    public string Guidance =>
        "Download payments, refunds and members as CSV for any range of up to 366 days from the Exports page or " +
        "GET /api/gym/exports/{payments|refunds|members}.csv?from=YYYY-MM-DD&to=YYYY-MM-DD. Amounts are in major units " +
        "(refunds negative), dates are ISO (YYYY-MM-DD), and the columns map directly onto QuickBooks' and Xero's bank-statement imports.";

    // Until scheduled reports exist (they arrive with the email connector), downloads alone do not make a connection.
    public Task<IntegrationStatus> GetStatusAsync(Guid gymId, CancellationToken ct) =>
        Task.FromResult(IntegrationStatus.NotConnected("No scheduled report is set up. CSV exports of payments, refunds and members can be downloaded from the Exports page at any time."));
}
