namespace Gymwire.Features.Dashboard.Integrations;

public enum IntegrationState
{
    NotConnected,
    Connected,
    Error,
}

/// <summary>A link under a tile's reason, e.g. to the failing webhook it names.</summary>
public sealed record StatusLink(string Text, string Href);

/// <summary>A tile's status and, always, the reason for it in words an owner understands.</summary>
public sealed record IntegrationStatus(IntegrationState State, string Reason)
{
    /// <summary>Where the owner fixes what the reason names (each failing webhook's page, say).</summary>
    public IReadOnlyList<StatusLink> Links { get; init; } = [];

    public static IntegrationStatus NotConnected(string reason) => new(IntegrationState.NotConnected, reason);
    public static IntegrationStatus Connected(string reason) => new(IntegrationState.Connected, reason);
    public static IntegrationStatus Error(string reason) => new(IntegrationState.Error, reason);
}

/// <summary>
/// One tile of Settings → Integrations. Each integration registers its own with
/// <see cref="IntegrationSetup.AddIntegrationStatus{T}"/>; a later registration with the same <see cref="Key"/>
/// replaces an earlier one, so a connector feature replaces the built-in "not connected" tile just by registering.
/// </summary>
public interface IIntegrationStatusProvider
{
    /// <summary>Stable, URL-safe id, e.g. <c>payments</c>; the tile's detail page is <c>/settings/integrations/{key}</c>.</summary>
    string Key { get; }

    string Name { get; }

    string Description { get; }

    /// <summary>Position of the tile on the page (ascending).</summary>
    int Order { get; }

    /// <summary>Where the Configure action leads; null for the tile's own detail page.</summary>
    string? ConfigureUrl { get; }

    /// <summary>How an owner connects it, shown on the detail page.</summary>
    string Guidance { get; }

    Task<IntegrationStatus> GetStatusAsync(Guid gymId, CancellationToken ct);
}

/// <summary>A tile's fixed texts, given once to the constructor; a subclass says only how to read its status.</summary>
public abstract class IntegrationTile(string key, string name, string description, int order, string guidance, string? configureUrl = null)
    : IIntegrationStatusProvider
{
    public string Key => key;
    public string Name => name;
    public string Description => description;
    public int Order => order;
    public string? ConfigureUrl => configureUrl;
    public string Guidance => guidance;

    public abstract Task<IntegrationStatus> GetStatusAsync(Guid gymId, CancellationToken ct);
}

/// <summary>
/// Something a gym uses to connect Zapier, Make or similar platforms: API keys, webhook subscriptions. The API-key
/// and webhook features each register one (<see cref="IntegrationSetup.AddAutomationConnectionSource{T}"/>), and
/// the Zapier/Make tile reflects them.
/// </summary>
public interface IAutomationConnectionSource
{
    Task<AutomationConnections> GetAsync(Guid gymId, CancellationToken ct);
}

/// <param name="Active">How many are usable now, e.g. "2 API keys" → 2.</param>
/// <param name="Summary">Owner-facing count, e.g. "2 active API keys".</param>
/// <param name="Problem">Owner-facing trouble, e.g. "1 webhook is disabled after failed deliveries"; null when fine.</param>
/// <param name="Links">Pages about the problems (each failing or disabled webhook).</param>
public readonly record struct AutomationConnections(int Active, string Summary, string? Problem, IReadOnlyList<StatusLink>? Links = null);

/// <summary>The tiles in page order, one per key (the last registered provider for a key wins).</summary>
public sealed partial class IntegrationTiles(IEnumerable<IIntegrationStatusProvider> providers, ILogger<IntegrationTiles> logger)
{
    private readonly IIntegrationStatusProvider[] _providers = providers
        .GroupBy(p => p.Key, StringComparer.Ordinal)
        .Select(g => g.Last())
        .OrderBy(p => p.Order)
        .ToArray();

    public IReadOnlyList<IIntegrationStatusProvider> Providers => _providers;

    public IIntegrationStatusProvider? Find(string key) => _providers.FirstOrDefault(p => p.Key == key);

    /// <summary>The status of one tile; a provider that throws shows as Error instead of breaking the page.</summary>
    public async Task<IntegrationStatus> StatusAsync(IIntegrationStatusProvider provider, Guid gymId, CancellationToken ct)
    {
        try
        {
            return await provider.GetStatusAsync(gymId, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogStatusFailed(logger, provider.Key, gymId, e);
            return IntegrationStatus.Error("Gymwire could not read this integration's status; the server log has details.");
        }
    }

    [LoggerMessage(EventId = 7001, Level = LogLevel.Error, Message = "Reading the status of integration {Key} for gym {GymId} failed")]
    private static partial void LogStatusFailed(ILogger logger, string key, Guid gymId, Exception exception);
}

public static class IntegrationSetup
{
    public static IServiceCollection AddIntegrationStatus<T>(this IServiceCollection services) where T : class, IIntegrationStatusProvider
    {
        services.AddScoped<IIntegrationStatusProvider, T>();
        return services;
    }

    public static IServiceCollection AddAutomationConnectionSource<T>(this IServiceCollection services) where T : class, IAutomationConnectionSource
    {
        services.AddScoped<IAutomationConnectionSource, T>();
        return services;
    }

    internal static IServiceCollection AddIntegrationStatuses(this IServiceCollection services)
    {
        services.AddScoped<IntegrationTiles>();
        foreach (var tile in ConnectorNotInstalled.BuiltIn)
        {
            services.AddSingleton<IIntegrationStatusProvider>(tile);
        }
        services.AddIntegrationStatus<AutomationIntegration>();
        return services;
    }
}
