using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Gymwire.Infrastructure;

/// <summary>The <c>Server</c> configuration section.</summary>
public sealed class ServerOptions
{
    public const string Section = "Server";

    /// <summary>Largest accepted request body; larger ones get 413.</summary>
    [Range(1024, 64 * 1024 * 1024, ErrorMessage = "Server:MaxRequestBodyBytes must be between 1024 and 67108864.")]
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;
}

public static class ServerSetup
{
    public static IServiceCollection AddServerLimits(this IServiceCollection services)
    {
        services.AddOptions<ServerOptions>().BindConfiguration(ServerOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<KestrelServerOptions>().Configure<IOptions<ServerOptions>>((kestrel, server) =>
        {
            kestrel.Limits.MaxRequestBodySize = server.Value.MaxRequestBodyBytes;
            RequestGuard.RaiseKestrelLimits(kestrel.Limits);
            kestrel.AddServerHeader = false;
        });
        return services;
    }

    /// <summary>The health endpoint, the only one: it answers 200 when the database is reachable, 503 when not.</summary>
    public const string HealthPath = "/healthz";

    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks(HealthPath, new Microsoft.AspNetCore.Diagnostics.HealthChecks.HealthCheckOptions
        {
            ResponseWriter = (context, report) =>
            {
                context.Response.ContentType = "application/json; charset=utf-8";
                return context.Response.WriteAsync(report.Status == HealthStatus.Healthy ? """{"status":"healthy"}""" : """{"status":"unhealthy"}""");
            },
        }).WithMetadata(new HttpMethodMetadata(["GET", "HEAD"])).AllowAnonymous().ExcludeFromDescription();
        return app;
    }
}

internal sealed class DatabaseHealthCheck(GymwireDbContext db) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        await db.Database.CanConnectAsync(cancellationToken) ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("database unreachable");
}
