using System.Net.Http.Headers;
using Gymwire.Features.Cluster;
using Gymwire.Infrastructure;
using Gymwire.Tests.Email;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Gymwire.Tests.Cluster;

/// <summary>One Gymwire node of a <see cref="ThreeNodes"/> cluster: a real server on Kestrel over loopback.</summary>
public sealed class Node(IServiceProvider services)
{
    public IServiceProvider Services { get; } = services;
    public Uri BaseAddress { get; } = new(services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    public Guid Id => Services.GetRequiredService<ClusterHeartbeat>().NodeId;

    public HttpClient Client(string? bearer = null)
    {
        var client = new HttpClient { BaseAddress = BaseAddress };
        if (bearer is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }
        return client;
    }
}

/// <summary>
/// Three Gymwire nodes on one throwaway PostgreSQL database, sharing the fake clock (as NTP-synchronised machines
/// share time): the fixture's own server is node 0, two more are started beside it with the same configuration.
/// Each runs every role (API, dispatcher, worker) and its own heartbeat, and logs to the fixture's sink. A test that
/// needs other settings for every node derives from it and adds them to <see cref="Settings"/>.
/// </summary>
public class ThreeNodes() : WebhookFixture(Store.Postgres), IAsyncLifetime
{
    private readonly List<WebApplication> _extra = [];

    /// <summary>Every node can send email (the report schedule needs it), to a stand-in SMTP server on loopback.</summary>
    public SmtpStandIn Smtp { get; } = new();

    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [.. base.Settings(), .. Smtp.Settings()];


    public IReadOnlyList<Node> Nodes { get; private set; } = [];

    async Task IAsyncLifetime.InitializeAsync()
    {
        await InitializeAsync();
        var nodes = new List<Node> { new(Services) };
        for (var i = 0; i < 2; i++)
        {
            var app = await StartNodeAsync();
            _extra.Add(app);
            nodes.Add(new Node(app.Services));
        }
        Nodes = nodes;
        // Revocations reach the other nodes by NOTIFY once each node LISTENs.
        await Eventually.TrueAsync(() => Task.FromResult(Nodes.All(n => n.Services.GetRequiredService<PostgresNotifications>().Listening)),
            what: "every node listening for revocations");
    }

    /// <summary>Starts another node on the cluster's database; the caller stops and disposes it.</summary>
    public async Task<WebApplication> StartNodeAsync()
    {
        var builder = GymwireApp.CreateBuilder(Arguments(ConnectionString), b =>
        {
            b.Services.AddSingleton<TimeProvider>(Clock);
            b.Logging.ClearProviders();
            b.Logging.AddProvider(Logs);
        });
        var app = GymwireApp.Build(builder);
        await app.StartAsync();
        return app;
    }

    async Task IAsyncLifetime.DisposeAsync()
    {
        foreach (var app in _extra)
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
        await DisposeAsync();
        Smtp.Dispose();
    }
}
