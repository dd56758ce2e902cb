namespace Gymwire.Features.Dashboard.Integrations;

/// <summary>
/// A connector that this server does not have yet. It says so rather than pretending; the connector's feature
/// replaces the tile by registering a provider with the same key.
/// </summary>
public sealed class ConnectorNotInstalled(string key, string name, string description, int order, string reason, string guidance)
    : IntegrationTile(key, name, description, order, guidance)
{
    public override Task<IntegrationStatus> GetStatusAsync(Guid gymId, CancellationToken ct) =>
        Task.FromResult(IntegrationStatus.NotConnected(reason));

    /// <summary>The built-in tiles, one per kind of connector an owner may look for.</summary>
    public static readonly IReadOnlyList<ConnectorNotInstalled> BuiltIn =
    [
        new("payments", "Payments", "Card and bank payments from your payment processor.", 10,
            reason: "No payment processor is configured on this server.",
            guidance: "A payment processor is connected in the server's configuration by whoever runs Gymwire. This server has no payments connector configured, so payments are only recorded through the API."),
        new("sms", "SMS", "Text messages to members and leads.", 20,
            reason: "No SMS provider is configured on this server; messages stay queued.",
            guidance: "An SMS provider is connected in the server's configuration. Until one is, messages sent with the send_sms action are queued and not delivered."),
        new("email", "Email", "Transactional email from your email service provider.", 30,
            reason: "No email service provider is configured on this server.",
            guidance: "An email service provider is connected in the server's configuration. This server has none configured."),
        new("accounting", "Accounting export", "CSV exports and scheduled reports for QuickBooks, Xero and other accounting platforms.", 40,
            reason: "Accounting exports are not set up on this server.",
            guidance: "Accounting exports are set up in the server's configuration. This server has none configured."),
    ];
}

/// <summary>
/// Zapier, Make and similar platforms connect with API keys (polling triggers, actions) or webhooks. The tile is
/// Connected when any registered <see cref="IAutomationConnectionSource"/> reports something in use (recently used,
/// not merely existing), Error when one reports a problem.
/// </summary>
public sealed class AutomationIntegration(IEnumerable<IAutomationConnectionSource> sources) : IntegrationTile(
    "automation", "Zapier / Make webhooks", "Connect hundreds of apps through Zapier, Make and similar platforms, without writing code.", 50,
    guidance:
        "Zapier and Make connect to Gymwire with an API key (for triggers and actions) or a webhook (for real-time events). Create one for each platform you use.",
    configureUrl: "/settings/webhooks")
{
    public override async Task<IntegrationStatus> GetStatusAsync(Guid gymId, CancellationToken ct)
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
