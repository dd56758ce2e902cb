using Gymwire.Features.Dashboard.Integrations;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gymwire.Tests.Dashboard;

/// <summary>The extension point the connector, API-key and webhook features plug their real status into.</summary>
public sealed class IntegrationStatusTests
{
    private static readonly Guid Gym = Guid.NewGuid();

    [Fact]
    public async Task Built_in_tiles_are_the_five_integrations_and_none_pretends_to_be_connected()
    {
        var tiles = Tiles(Services());
        Assert.Equal(["payments", "sms", "email", "accounting", "automation"], tiles.Providers.Select(p => p.Key));
        foreach (var provider in tiles.Providers)
        {
            var status = await tiles.StatusAsync(provider, Gym, CancellationToken.None);
            Assert.Equal(IntegrationState.NotConnected, status.State);
            Assert.False(string.IsNullOrWhiteSpace(status.Reason));
        }
    }

    [Fact]
    public async Task A_feature_replaces_a_built_in_tile_by_registering_the_same_key()
    {
        var services = Services();
        services.AddIntegrationStatus<StripeLike>();
        var tiles = Tiles(services);
        Assert.Equal(5, tiles.Providers.Count);
        var payments = tiles.Find("payments")!;
        Assert.IsType<StripeLike>(payments);
        Assert.Equal(IntegrationState.Connected, (await tiles.StatusAsync(payments, Gym, CancellationToken.None)).State);
    }

    [Fact]
    public async Task Zapier_tile_is_connected_when_a_source_has_something_active_and_in_error_when_one_reports_a_problem()
    {
        var services = Services();
        services.AddSingleton<IAutomationConnectionSource>(new Source(new AutomationConnections(0, "0 webhooks", null)));
        services.AddSingleton<IAutomationConnectionSource>(new Source(new AutomationConnections(2, "2 active API keys", null)));
        var tiles = Tiles(services);
        var connected = await tiles.StatusAsync(tiles.Find("automation")!, Gym, CancellationToken.None);
        Assert.Equal(IntegrationStatus.Connected("2 active API keys."), connected);

        services.AddSingleton<IAutomationConnectionSource>(new Source(new AutomationConnections(0, "0 webhooks", "1 webhook is disabled after failed deliveries.")));
        tiles = Tiles(services);
        var failing = await tiles.StatusAsync(tiles.Find("automation")!, Gym, CancellationToken.None);
        Assert.Equal(IntegrationStatus.Error("1 webhook is disabled after failed deliveries."), failing);
    }

    [Fact]
    public async Task A_provider_that_throws_shows_as_an_error_instead_of_breaking_the_page()
    {
        var services = Services();
        services.AddIntegrationStatus<Broken>();
        var tiles = Tiles(services);
        var status = await tiles.StatusAsync(tiles.Find("email")!, Gym, CancellationToken.None);
        Assert.Equal(IntegrationState.Error, status.State);
        Assert.DoesNotContain("secret", status.Reason, StringComparison.Ordinal);
    }

    private static ServiceCollection Services()
    {
        var services = new ServiceCollection();
        services.AddSingleton(typeof(ILogger<>), typeof(NullLogger<>));
        services.AddIntegrationStatuses();
        return services;
    }

    private static IntegrationTiles Tiles(ServiceCollection services) =>
        services.BuildServiceProvider().CreateScope().ServiceProvider.GetRequiredService<IntegrationTiles>();

    private sealed class StripeLike : IIntegrationStatusProvider
    {
        public string Key => "payments";
        public string Name => "Payments";
        public string Description => "Stripe";
        public int Order => 10;
        public string? ConfigureUrl => "/settings/integrations/payments/stripe";
        public string Guidance => "";
        public Task<IntegrationStatus> GetStatusAsync(Guid gymId, CancellationToken ct) => Task.FromResult(IntegrationStatus.Connected("Stripe account acct_1 connected."));
    }

    private sealed class Broken : IIntegrationStatusProvider
    {
        public string Key => "email";
        public string Name => "Email";
        public string Description => "";
        public int Order => 30;
        public string? ConfigureUrl => null;
        public string Guidance => "";
        public Task<IntegrationStatus> GetStatusAsync(Guid gymId, CancellationToken ct) => throw new InvalidOperationException("smtp password secret rejected");
    }

    private sealed class Source(AutomationConnections result) : IAutomationConnectionSource
    {
        public Task<AutomationConnections> GetAsync(Guid gymId, CancellationToken ct) => Task.FromResult(result);
    }
}
