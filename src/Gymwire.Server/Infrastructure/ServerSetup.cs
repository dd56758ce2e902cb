using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Identity;
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

    public static IServiceCollection AddOutbox(this IServiceCollection services)
    {
        services.AddSingleton<OutboxSignal>();
        services.AddSingleton<EventMetrics>();
        services.AddWakeAfterCommit<OutboxEvent, OutboxSignal>(sp =>
        {
            var metrics = sp.GetRequiredService<EventMetrics>();
            return row => metrics.Written(row.Type);
        });
        return services;
    }

    public static IServiceCollection AddOwners(this IServiceCollection services)
    {
        services.AddOptions<AuthOptions>().BindConfiguration(AuthOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddIdentityCore<Owner>(o =>
            {
                o.User.RequireUniqueEmail = true;
                o.Password.RequiredLength = 10;
                o.Password.RequireNonAlphanumeric = false;
                o.Password.RequireUppercase = false;
                o.Password.RequireDigit = false;
                o.Password.RequireLowercase = false;
                o.Lockout.AllowedForNewUsers = false;
            })
            .AddEntityFrameworkStores<GymwireDbContext>();
        // Lockout is OwnerSignIn's (atomic counters in sign_in_throttles), not Identity's per-owner columns.
        services.AddScoped<OwnerSignIn>();
        services.AddSingleton<PasswordCheckLimiter>();
        services.AddScoped<GymProvisioning>();
        services.AddScoped<PasswordResets>();
        services.AddSingleton<Auth.IBearerTokenValidator, OwnerSessionValidator>();
        return services;
    }

    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/healthz", new Microsoft.AspNetCore.Diagnostics.HealthChecks.HealthCheckOptions
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
