namespace Gymwire.Features.Dashboard.Integrations;

/// <summary>
/// A connector that this server does not have yet. It says so rather than pretending; the connector's feature
/// replaces the tile by registering a provider with the same key.
/// </summary>
public abstract class ConnectorNotInstalled : IIntegrationStatusProvider
{
    public abstract string Key { get; }
    public abstract string Name { get; }
    public abstract string Description { get; }
    public abstract int Order { get; }
    public string? ConfigureUrl => null;
    public abstract string Guidance { get; }
    protected abstract string Reason { get; }

    public Task<IntegrationStatus> GetStatusAsync(Guid gymId, CancellationToken ct) => Task.FromResult(IntegrationStatus.NotConnected(Reason));
}

public sealed class PaymentsIntegration : ConnectorNotInstalled
{
    public override string Key => "payments";
    public override string Name => "Payments";
    public override string Description => "Card and bank payments from your payment processor.";
    public override int Order => 10;
    protected override string Reason => "No payment processor is configured on this server.";
    public override string Guidance =>
        "A payment processor is connected in the server's configuration by whoever runs Gymwire. This server has no payments connector configured, so payments are only recorded through the API.";
}

public sealed class SmsIntegration : ConnectorNotInstalled
{
    public override string Key => "sms";
    public override string Name => "SMS";
    public override string Description => "Text messages to members and leads.";
    public override int Order => 20;
    protected override string Reason => "No SMS provider is configured on this server; messages stay queued.";
    public override string Guidance =>
        "An SMS provider is connected in the server's configuration. Until one is, messages sent with the send_sms action are queued and not delivered.";
}

public sealed class EmailIntegration : ConnectorNotInstalled
{
    public override string Key => "email";
    public override string Name => "Email";
    public override string Description => "Transactional email from your email service provider.";
    public override int Order => 30;
    protected override string Reason => "No email service provider is configured on this server.";
    public override string Guidance => "An email service provider is connected in the server's configuration. This server has none configured.";
}

public sealed class AccountingExportIntegration : ConnectorNotInstalled
{
    public override string Key => "accounting";
    public override string Name => "Accounting export";
    public override string Description => "CSV exports and scheduled reports for QuickBooks, Xero and other accounting platforms.";
    public override int Order => 40;
    protected override string Reason => "Accounting exports are not set up on this server.";
    public override string Guidance => "Accounting exports are set up in the server's configuration. This server has none configured.";
}

/// <summary>
/// Zapier, Make and similar platforms connect with API keys (polling triggers, actions) or webhooks. The tile is
/// Connected when any registered <see cref="IAutomationConnectionSource"/> reports something in use (recently used,
/// not merely existing), Error when one reports a problem.
/// </summary>
public sealed class AutomationIntegration(IEnumerable<IAutomationConnectionSource> sources) : IIntegrationStatusProvider
{
    public string Key => "automation";
    public string Name => "Zapier / Make webhooks";
    public string Description => "Connect hundreds of apps through Zapier, Make and similar platforms, without writing code.";
    public int Order => 50;
    public string? ConfigureUrl => "/settings/webhooks";
    public string Guidance =>
        "Zapier and Make connect to Gymwire with an API key (for triggers and actions) or a webhook (for real-time events). Create one for each platform you use.";

    public async Task<IntegrationStatus> GetStatusAsync(Guid gymId, CancellationToken ct)
    {
        var found = new List<AutomationConnections>();
        foreach (var source in sources)
        {
            found.Add(await source.GetAsync(gymId, ct));
        }
        var problems = found.Where(f => f.Problem is not null).Select(f => f.Problem!).ToList();
        if (problems.Count > 0)
        {
            var links = found.SelectMany(f => f.Links ?? []).ToArray();
            var error = IntegrationStatus.Error(string.Join(" ", problems));
            return links.Length == 0 ? error : error with { Links = links };
        }
        var active = found.Where(f => f.Active > 0).Select(f => f.Summary).ToList();
        return active.Count > 0
            ? IntegrationStatus.Connected(string.Join(", ", active) + ".")
            : IntegrationStatus.NotConnected("Nothing has used an API key or a webhook in the last 30 days: create one and connect Zapier or Make with it.");
    }
}
