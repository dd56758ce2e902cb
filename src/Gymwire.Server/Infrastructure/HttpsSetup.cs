using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.HttpsPolicy;

namespace Gymwire.Infrastructure;

/// <summary>
/// The <c>Https</c> configuration section. Kestrel serves HTTPS from its own configuration
/// (<c>Kestrel:Endpoints:Https:Url</c> and <c>:Certificate:Path/KeyPath/Password</c>); these settings add the redirect and HSTS.
/// </summary>
public sealed class HttpsOptions
{
    public const string Section = "Https";

    /// <summary>Answer plain-HTTP requests with a redirect to HTTPS (307), so a mistyped http:// URL never carries a key in clear twice.</summary>
    public bool Redirect { get; set; }

    /// <summary>Send <c>Strict-Transport-Security</c> on HTTPS responses (not for localhost, 127.0.0.1 or [::1]).</summary>
    public bool Hsts { get; set; }

    [Range(typeof(TimeSpan), "00:05:00", "730.00:00:00", ErrorMessage = "Https:HstsMaxAge must be between 00:05:00 and 730.00:00:00.")]
    public TimeSpan HstsMaxAge { get; set; } = TimeSpan.FromDays(365);
}

public static class HttpsSetup
{
    public static IServiceCollection AddGymwireHttps(this IServiceCollection services)
    {
        services.AddOptions<HttpsOptions>().BindConfiguration(HttpsOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<HstsOptions>().Configure<IOptions<HttpsOptions>>((hsts, https) => hsts.MaxAge = https.Value.HstsMaxAge);
        return services;
    }

    /// <summary>
    /// After the forwarded headers, so that a request a trusted proxy received over HTTPS counts as HTTPS. The health
    /// endpoint is not redirected: load balancers and container health checks probe the node over plain HTTP, and a
    /// redirect would pass a curl -f check and fail a probe whatever the database's state.
    /// </summary>
    public static WebApplication UseGymwireHttps(this WebApplication app)
    {
        var https = app.Services.GetRequiredService<IOptions<HttpsOptions>>().Value;
        if (https.Hsts)
        {
            app.UseHsts();
        }
        if (https.Redirect)
        {
            app.UseWhen(context => !context.Request.Path.StartsWithSegments(ServerSetup.HealthPath, StringComparison.OrdinalIgnoreCase),
                redirected => redirected.UseHttpsRedirection());
        }
        return app;
    }
}
