namespace Gymwire.Features.Dashboard;

/// <param name="Href">Null while the page does not exist yet: the entry shows, but is not a link.</param>
public sealed record NavItem(string Key, string Label, string? Href);

/// <summary>The dashboard's navigation, in GymPoint's order (Settings → Integrations → API Keys, Webhooks).</summary>
public static class DashboardNav
{
    public const string Integrations = "integrations";
    public const string ApiKeys = "api-keys";
    public const string Webhooks = "webhooks";
    public const string Activity = "activity";
    public const string Exports = "exports";
    public const string Gym = "gym";
    public const string Security = "security";

    public static readonly IReadOnlyList<NavItem> Items =
    [
        new(Integrations, "Integrations", "/settings/integrations"),
        new(ApiKeys, "API Keys", "/settings/api-keys"),
        new(Webhooks, "Webhooks", "/settings/webhooks"),
        new(Activity, "Activity", "/activity"),
        new(Exports, "Exports", "/exports"),
        new(Gym, "Gym", "/settings/gym"),
        new(Security, "Security", "/settings/security"),
    ];
}
