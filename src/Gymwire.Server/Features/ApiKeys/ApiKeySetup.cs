using System.CommandLine;
using Gymwire.Features.Dashboard.Integrations;

namespace Gymwire.Features.ApiKeys;

/// <summary>API keys: options, the key cache and its revocation channel, the bearer-token validator, and the CLI's commands.</summary>
public static class ApiKeySetup
{
    public static IServiceCollection AddApiKeys(this IServiceCollection services)
    {
        services.AddOptions<ApiKeyOptions>().BindConfiguration(ApiKeyOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<ApiKeyCache>();
        services.AddNotificationChannel<ApiKeyRevocationChannel>();
        services.AddHostedService<ApiKeyRevocationPoller>();
        services.AddSingleton<ApiKeyExpiry>();
        services.AddHostedService(sp => sp.GetRequiredService<ApiKeyExpiry>());
        services.AddSingleton<ApiKeyUsage>();
        services.AddSingleton<IBearerTokenValidator, ApiKeyValidator>();
        services.AddSingleton<ApiKeyMetrics>();
        services.AddScoped<ApiKeyService>();
        services.AddAutomationConnectionSource<ApiKeyConnections>();
        return services;
    }

    /// <summary><c>gymwire api-keys create|revoke</c>, for headless set-up and scripts.</summary>
    public static Command CliCommand(string[] args)
    {
        var gym = GymwireCli.IdOption("--gym", "The gym's id.");
        var name = new Option<string>("--name") { Description = "Display name.", DefaultValueFactory = _ => ApiKeyService.DefaultName };
        var scopes = new Option<string>("--scopes") { Description = "Comma-separated: read, write.", DefaultValueFactory = _ => Scopes.Read };
        var expires = GymwireCli.TimeOption("--expires-at", "Optional expiry (ISO-8601, UTC).");
        var create = new Command("create", "Create an API key; prints it once.") { gym, name, scopes, expires };
        create.SetAction((parse, ct) => GymwireCli.AdminAsync(args, async (services, ct2) =>
        {
            var requested = parse.GetValue(scopes)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            // A time without an offset is UTC, as the option says; not the machine's local time.
            var expiry = parse.GetValue(expires) is { } e
                ? e.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(e, DateTimeKind.Utc) : e.ToUniversalTime()
                : (DateTime?)null;
            var (created, error) = await services.GetRequiredService<ApiKeyService>()
                .CreateAsync(parse.GetValue(gym), parse.GetValue(name), requested, expiry, ct2);
            return created is null ? GymwireCli.Fail(error!) : GymwireCli.Ok(created);
        }, ct));

        var id = GymwireCli.IdOption("--id", "The key's id.");
        var revoke = new Command("revoke", "Revoke an API key; it stops working at once.") { gym, id };
        revoke.SetAction((parse, ct) => GymwireCli.AdminAsync(args, async (services, ct2) =>
        {
            var revoked = await services.GetRequiredService<ApiKeyService>().RevokeAsync(parse.GetValue(gym), parse.GetValue(id), ct2);
            return revoked is null ? GymwireCli.Fail("API key not found") : GymwireCli.Ok(revoked);
        }, ct));

        create.TreatUnmatchedTokensAsErrors = false;
        revoke.TreatUnmatchedTokensAsErrors = false;
        return new Command("api-keys", "Manage API keys.") { create, revoke };
    }
}
