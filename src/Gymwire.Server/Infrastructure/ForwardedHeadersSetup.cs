using System.Net;
using Microsoft.AspNetCore.HttpOverrides;
using IPNetwork = System.Net.IPNetwork;

namespace Gymwire.Infrastructure;

/// <summary>The <c>ForwardedHeaders</c> configuration section: which reverse proxies may say who the client is.</summary>
public sealed class ForwardedHeadersSettings
{
    public const string Section = "ForwardedHeaders";

    /// <summary>
    /// Addresses (<c>10.0.0.5</c>) or networks (<c>10.0.0.0/8</c>, <c>fd00::/8</c>) of the proxies in front of Gymwire.
    /// Empty (the default): nobody is trusted, and X-Forwarded-For/-Proto are ignored.
    /// </summary>
    public string[] TrustedProxies { get; set; } = [];
}

internal sealed class ForwardedHeadersSettingsValidator : IValidateOptions<ForwardedHeadersSettings>
{
    public ValidateOptionsResult Validate(string? name, ForwardedHeadersSettings options)
    {
        var bad = options.TrustedProxies.Where(p => !IPAddress.TryParse(p, out _) && !IPNetwork.TryParse(p, out _)).ToArray();
        return bad.Length == 0
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"ForwardedHeaders:TrustedProxies: not an IP address or network (address/prefix): {string.Join(", ", bad)}");
    }
}

public static class ForwardedHeadersSetup
{
    public static IServiceCollection AddGymwireForwardedHeaders(this IServiceCollection services)
    {
        services.AddOptions<ForwardedHeadersSettings>().BindConfiguration(ForwardedHeadersSettings.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ForwardedHeadersSettings>, ForwardedHeadersSettingsValidator>();
        services.AddOptions<ForwardedHeadersOptions>().Configure<IOptions<ForwardedHeadersSettings>>((o, settings) =>
        {
            o.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            // The framework trusts loopback by default; Gymwire trusts only what is configured.
            o.KnownProxies.Clear();
            o.KnownIPNetworks.Clear();
            // Walk the X-Forwarded-For chain from the right while each hop is a trusted proxy; the first other address is the client.
            o.ForwardLimit = null;
            foreach (var proxy in settings.Value.TrustedProxies)
            {
                if (IPAddress.TryParse(proxy, out var address))
                {
                    o.KnownProxies.Add(address);
                }
                else
                {
                    o.KnownIPNetworks.Add(IPNetwork.Parse(proxy));
                }
            }
        });
        return services;
    }

    /// <summary>First in the pipeline, so everything after sees the client's address and scheme (cookies get Secure on HTTPS).</summary>
    public static WebApplication UseGymwireForwardedHeaders(this WebApplication app)
    {
        if (app.Services.GetRequiredService<IOptions<ForwardedHeadersSettings>>().Value.TrustedProxies.Length > 0)
        {
            app.UseForwardedHeaders();
        }
        return app;
    }
}
