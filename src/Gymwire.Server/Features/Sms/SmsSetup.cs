using Gymwire.Features.Dashboard.Integrations;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Features.Sms;

public static class SmsSetup
{
    /// <summary>The SMS connector: the provider named by <c>Sms:Provider</c> and the sender worker that drains the queue.</summary>
    public static IServiceCollection AddSmsConnector(this IServiceCollection services)
    {
        services.AddOptions<SmsOptions>().BindConfiguration(SmsOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<SmsOptions>, SmsOptionsValidator>();
        services.AddSingleton<SmsSignal>();
        services.AddWakeAfterCommit<SmsMessage, SmsSignal>();
        services.AddHttpClient<TwilioSmsProvider>(c => c.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false, ConnectTimeout = TimeSpan.FromSeconds(10) })
            // The default handler logs each request's URL at Information, and Twilio's carries the account SID.
            .RemoveAllLoggers();
        services.AddScoped<LogSmsProvider>();
        services.AddScoped<ISmsProvider>(sp => sp.GetRequiredService<IOptions<SmsOptions>>().Value.Provider switch
        {
            SmsOptions.TwilioProvider => sp.GetRequiredService<TwilioSmsProvider>(),
            SmsOptions.LogProvider => sp.GetRequiredService<LogSmsProvider>(),
            _ => throw new InvalidOperationException("No SMS provider is configured (Sms:Provider)."),
        });
        services.AddSingleton<SmsMetrics>();
        services.AddSingleton<TwilioStatusCallbacks>();
        services.AddHostedService<SmsSender>();
        services.AddIntegrationStatus<SmsConnectorStatus>();
        return services;
    }
}

/// <summary>The SMS tile: the configured provider, and the gym's last send error with its time.</summary>
public sealed class SmsConnectorStatus(GymwireDbContext db, IOptions<SmsOptions> options, IServiceProvider services) : IntegrationTile(
    "sms", "SMS", "Text messages to members and leads (the send_sms action).", 20,
    guidance:
        "The SMS provider is set in the server's configuration (Sms:Provider = twilio with Sms:Twilio:AccountSid, AuthToken and From). " +
        "Until one is, messages from the send_sms action stay queued; none are lost. GET /api/gym/sms lists them with their status.")
{
    public override async Task<IntegrationStatus> GetStatusAsync(Guid gymId, CancellationToken ct)
    {
        var queued = await db.SmsMessages.CountAsync(m => m.GymId == gymId && m.Status == SmsStatuses.Queued, ct);
        if (options.Value.Provider.Length == 0)
        {
            return IntegrationStatus.NotConnected(queued == 0
                ? "No SMS provider is configured on this server; messages would stay queued."
                : $"No SMS provider is configured on this server; {queued} message(s) are queued and will be sent once one is.");
        }
        var provider = services.GetRequiredService<ISmsProvider>();
        var last = await db.SmsMessages.AsNoTracking().Where(m => m.GymId == gymId && m.LastAttemptAt != null)
            .OrderByDescending(m => m.LastAttemptAt).Select(m => new { m.Status, m.Error, m.LastAttemptAt }).FirstOrDefaultAsync(ct);
        // An undelivered message was sent: its error is the member's phone or carrier's, not the connector's.
        if (last is { Error: not null } && last.Status is not (SmsStatuses.Sent or SmsStatuses.Delivered or SmsStatuses.Undelivered))
        {
            var when = Gyms.GymTimeZones.Minutes(last.LastAttemptAt!.Value, await Gyms.GymTimeZones.OfGymAsync(db, gymId, ct));
            return IntegrationStatus.Error($"{provider.Describe()}. Last send failed at {when}: {last.Error}");
        }
        return IntegrationStatus.Connected($"{provider.Describe()}.{(queued > 0 ? $" {queued} message(s) queued." : "")}");
    }
}
