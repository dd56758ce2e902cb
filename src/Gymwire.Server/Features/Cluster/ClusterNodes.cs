using System.CommandLine;
using System.ComponentModel.DataAnnotations;
using System.Diagnostics.Metrics;
using System.Reflection;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Gymwire.Features.Cluster;

/// <summary>One running (or recently stopped) <c>gymwire serve</c> process, as its heartbeat last recorded it.</summary>
public sealed class ClusterNode
{
    /// <summary>New at every start: a restarted process is a new node (the old row ages out).</summary>
    public Guid Id { get; set; }
    public required string Host { get; set; }
    /// <summary>The process id on <see cref="Host"/>: tells apart nodes run on one machine. Null in rows of older versions.</summary>
    public int? ProcessId { get; set; }
    public required string Version { get; set; }
    /// <summary>Comma-separated: <c>api</c>, and <c>dispatcher</c> / <c>worker</c> when those roles are on.</summary>
    public required string Roles { get; set; }
    public DateTime StartedAt { get; set; }
    public DateTime LastSeenAt { get; set; }
    /// <summary>Set when the process stopped cleanly; null while it runs or when it died.</summary>
    public DateTime? StoppedAt { get; set; }
}

internal sealed class ClusterNodeConfiguration : IEntityTypeConfiguration<ClusterNode>
{
    public void Configure(EntityTypeBuilder<ClusterNode> b)
    {
        b.ToTable("cluster_nodes");
        b.Property(x => x.Host).HasMaxLength(255);
        b.Property(x => x.Version).HasMaxLength(100);
        b.Property(x => x.Roles).HasMaxLength(100);
        b.HasIndex(x => x.LastSeenAt);
    }
}

/// <summary>The <c>Cluster</c> configuration section.</summary>
public sealed class ClusterOptions
{
    public const string Section = "Cluster";

    /// <summary>How often each node records that it is alive.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00", ErrorMessage = "Cluster:HeartbeatInterval must be between 00:00:01 and 00:10:00.")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>A node not seen for this many heartbeat intervals is listed as dead.</summary>
    [Range(2, 100, ErrorMessage = "Cluster:DeadAfterMissedHeartbeats must be between 2 and 100.")]
    public int DeadAfterMissedHeartbeats { get; set; } = 3;

    /// <summary>Dead and stopped nodes are listed for this long, then their rows are deleted.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "30.00:00:00", ErrorMessage = "Cluster:ForgetAfter must be between 00:01:00 and 30.00:00:00.")]
    public TimeSpan ForgetAfter { get; set; } = TimeSpan.FromHours(1);

    public TimeSpan DeadAfter => HeartbeatInterval * DeadAfterMissedHeartbeats;
}

[OptionsValidator]
public sealed partial class ClusterOptionsValidator : IValidateOptions<ClusterOptions>;

/// <summary>
/// This process's node id: new at every start, recorded in <c>cluster_nodes</c> by the heartbeat and on every delivery
/// this process claims (<see cref="WebhookDelivery.ClaimedBy"/>).
/// </summary>
public sealed class ThisNode
{
    public Guid Id { get; } = Guid.CreateVersion7();
}

/// <summary>The <c>Gymwire.Cluster</c> meter: live nodes as this node's heartbeat last counted them (a scrape never queries).</summary>
public sealed class ClusterMetrics
{
    public const string MeterName = "Gymwire.Cluster";

    private readonly ObservableGauge<long> _nodes;
    // -1 until the first count: the gauge then has no value rather than a misleading zero.
    private long _live = -1;

    public ClusterMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _nodes = meter.CreateObservableGauge("gymwire.cluster.nodes", Observe, "{node}",
            "Live nodes (seen within Cluster:HeartbeatInterval x DeadAfterMissedHeartbeats, not stopped), as this node's heartbeat last counted them.");
    }

    /// <summary>Whether anyone listens: the heartbeat counts the live nodes only then.</summary>
    public bool Enabled => _nodes.Enabled;

    public void ReportLive(long live) => Interlocked.Exchange(ref _live, live);

    private IEnumerable<Measurement<long>> Observe()
    {
        var live = Interlocked.Read(ref _live);
        return live < 0 ? [] : [new Measurement<long>(live)];
    }
}

/// <summary>A node as <c>gymwire cluster status</c> prints it.</summary>
public sealed record ClusterNodeStatus(Guid Id, string Host, int? ProcessId, string Version, IReadOnlyList<string> Roles, DateTime StartedAt, DateTime LastSeenAt,
    DateTime? StoppedAt, string State);

/// <summary>
/// This process's identity in <c>cluster_nodes</c>, and its heartbeat: a row written at start, its <c>last_seen_at</c>
/// moved every <see cref="ClusterOptions.HeartbeatInterval"/> (on the injected clock), <c>stopped_at</c> set on a clean
/// stop. Each beat also releases the claimed deliveries of nodes it finds dead (<see cref="ReleaseDeadNodesClaimsAsync"/>),
/// counts the live nodes for the <c>gymwire.cluster.nodes</c> gauge, deletes the rows of nodes gone for longer than
/// <see cref="ClusterOptions.ForgetAfter"/> and, when limits are shared, the rate-limit windows nobody used within their window.
/// </summary>
public sealed partial class ClusterHeartbeat(
    IServiceScopeFactory scopes,
    TimeProvider clock,
    IOptions<ClusterOptions> options,
    IOptions<WebhookOptions> webhooks,
    ThisNode node,
    IDeliveryQueue queue,
    ClusterMetrics metrics,
    ILogger<ClusterHeartbeat> logger,
    PostgresRateLimitStore? sharedLimits = null) : BackgroundService
{
    private static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(1);

    public Guid NodeId => node.Id;

    private bool _failing;
    private DateTimeOffset _nextSweep;
    // Dead nodes whose claims this node has released: each is released once per node, not at every beat.
    private readonly HashSet<Guid> _released = [];

    public static string CurrentVersion =>
        typeof(ClusterHeartbeat).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "unknown";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        var started = clock.GetUtcNow().UtcDateTime;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await BeatAsync(started, stoppingToken);
                if (_failing)
                {
                    _failing = false;
                    LogRecovered(logger);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The database is unreachable or busy: the node keeps serving; the next beat tries again.
                if (!_failing)
                {
                    _failing = true;
                    LogBeatFailed(logger, e);
                }
            }
            // A stop ends the wait without an exception; the loop's condition then ends the service.
            await Task.Delay(options.Value.HeartbeatInterval, clock, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            var now = clock.GetUtcNow().UtcDateTime;
            await db.ClusterNodes.Where(n => n.Id == NodeId)
                .ExecuteUpdateAsync(s => s.SetProperty(n => n.StoppedAt, now).SetProperty(n => n.LastSeenAt, now), cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // The host's stop ran out of time: the row reads as dead after a few intervals instead of stopped.
        }
        catch (Exception e)
        {
            // Stopping must not fail on it: the row then reads as dead after a few intervals instead of stopped.
            LogBeatFailed(logger, e);
        }
    }

    private async Task BeatAsync(DateTime started, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var now = clock.GetUtcNow().UtcDateTime;
        var updated = await db.ClusterNodes.Where(n => n.Id == NodeId).ExecuteUpdateAsync(s => s.SetProperty(n => n.LastSeenAt, now), ct);
        if (updated == 0)
        {
            // First beat (or the row was forgotten while this node could not reach the database).
            db.ClusterNodes.Add(new ClusterNode
            {
                Id = NodeId,
                Host = Environment.MachineName,
                ProcessId = Environment.ProcessId,
                Version = CurrentVersion,
                Roles = string.Join(',', Roles(webhooks.Value)),
                StartedAt = started,
                LastSeenAt = now,
            });
            await db.SaveChangesAsync(ct);
        }
        await ReleaseDeadNodesClaimsAsync(db, now, ct);
        if (metrics.Enabled)
        {
            var liveSince = now - options.Value.DeadAfter;
            metrics.ReportLive(await db.ClusterNodes.LongCountAsync(n => n.StoppedAt == null && n.LastSeenAt >= liveSince, ct));
        }
        if (clock.GetUtcNow() >= _nextSweep)
        {
            _nextSweep = clock.GetUtcNow() + SweepInterval;
            var forgotten = now - options.Value.ForgetAfter;
            await db.ClusterNodes.Where(n => n.LastSeenAt < forgotten).ExecuteDeleteAsync(ct);
            if (sharedLimits is not null)
            {
                await sharedLimits.SweepAsync(ct);
            }
        }
    }

    /// <summary>
    /// Gives back the claims of every node not seen for <see cref="ClusterOptions.DeadAfter"/> (killed, or cut off from
    /// the database), so that their deliveries are due again now instead of when their lease ends. Only nodes that died
    /// within the last lease can still hold a claim, so older ones are not looked at. The release is conditional (claims
    /// still held by that node), so several live nodes noticing the same death at once release each claim once.
    /// </summary>
    private async Task ReleaseDeadNodesClaimsAsync(GymwireDbContext db, DateTime now, CancellationToken ct)
    {
        var deadBefore = now - options.Value.DeadAfter;
        var claimsEndedBefore = deadBefore - webhooks.Value.EffectiveClaimLease - options.Value.HeartbeatInterval;
        var dead = await db.ClusterNodes.AsNoTracking()
            .Where(n => n.Id != node.Id && n.LastSeenAt < deadBefore && n.LastSeenAt >= claimsEndedBefore)
            .Select(n => n.Id).ToListAsync(ct);
        _released.IntersectWith(dead);
        foreach (var id in dead.Where(id => !_released.Contains(id)))
        {
            var count = await queue.ReleaseClaimsOfAsync(id, ct);
            _released.Add(id);
            if (count > 0)
            {
                LogReleasedDeadNodeClaims(logger, id, count, options.Value.DeadAfter);
            }
        }
    }

    public static IEnumerable<string> Roles(WebhookOptions webhooks)
    {
        yield return "api";
        if (webhooks.DispatcherEnabled)
        {
            yield return "dispatcher";
        }
        if (webhooks.WorkerEnabled)
        {
            yield return "worker";
        }
    }

    /// <summary>Every node still listed, live ones first, as <c>gymwire cluster status</c> prints them.</summary>
    public static async Task<IReadOnlyList<ClusterNodeStatus>> StatusAsync(GymwireDbContext db, DateTime now, ClusterOptions options, CancellationToken ct)
    {
        var nodes = await db.ClusterNodes.AsNoTracking().ToListAsync(ct);
        return
        [
            .. nodes.Select(n => new ClusterNodeStatus(n.Id, n.Host, n.ProcessId, n.Version, n.Roles.Split(',', StringSplitOptions.RemoveEmptyEntries), n.StartedAt, n.LastSeenAt, n.StoppedAt,
                    n.StoppedAt is not null ? "stopped" : now - n.LastSeenAt <= options.DeadAfter ? "live" : "dead"))
                .OrderBy(n => n.State == "live" ? 0 : 1).ThenByDescending(n => n.LastSeenAt),
        ];
    }

    [LoggerMessage(EventId = 1401, Level = LogLevel.Warning, Message = "Recording this node's heartbeat failed; retrying every interval")]
    private static partial void LogBeatFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1402, Level = LogLevel.Information, Message = "This node's heartbeat is recorded again")]
    private static partial void LogRecovered(ILogger logger);

    [LoggerMessage(EventId = 1403, Level = LogLevel.Warning,
        Message = "Node {DeadNodeId} is dead (no heartbeat for {DeadAfter}): released its {Count} claimed deliveries, due again now")]
    private static partial void LogReleasedDeadNodeClaims(ILogger logger, Guid deadNodeId, int count, TimeSpan deadAfter);
}

public static class ClusterSetup
{
    public static IServiceCollection AddCluster(this IServiceCollection services)
    {
        services.AddOptions<ClusterOptions>().BindConfiguration(ClusterOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ClusterOptions>, ClusterOptionsValidator>();
        services.AddSingleton<ThisNode>();
        services.AddSingleton<ClusterMetrics>();
        services.AddSingleton<ClusterHeartbeat>();
        services.AddHostedService(sp => sp.GetRequiredService<ClusterHeartbeat>());
        return services;
    }

    /// <summary><c>gymwire cluster status</c>: the nodes that recorded a heartbeat, live, stopped and dead, as JSON.</summary>
    public static Command CliCommand(string[] args)
    {
        var cluster = new Command("cluster", "The nodes serving this database.");
        var status = new Command("status", "List live nodes and those stopped or dead within Cluster:ForgetAfter.");
        status.TreatUnmatchedTokensAsErrors = false;
        status.SetAction((_, ct) => GymwireCli.AdminAsync(args, async (services, ct2) =>
        {
            var options = services.GetRequiredService<IOptions<ClusterOptions>>().Value;
            var now = services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime;
            var nodes = await ClusterHeartbeat.StatusAsync(services.GetRequiredService<GymwireDbContext>(), now, options, ct2);
            return GymwireCli.Ok(new
            {
                live = nodes.Count(n => n.State == "live"),
                dead_after_seconds = (int)options.DeadAfter.TotalSeconds,
                nodes,
            });
        }, ct));
        cluster.Subcommands.Add(status);
        return cluster;
    }
}
