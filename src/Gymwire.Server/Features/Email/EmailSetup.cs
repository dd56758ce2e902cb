using Gymwire.Features.Dashboard.Integrations;

namespace Gymwire.Features.Email;

/// <summary>Email out: SMTP, owner notifications, and the scheduled accounting reports.</summary>
public static class EmailSetup
{
    public static IServiceCollection AddEmailConnector(this IServiceCollection services)
    {
        services.AddOptions<EmailOptions>().BindConfiguration(EmailOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<EmailOptions>, EmailOptionsValidator>();
        services.AddOptions<ReportsOptions>().BindConfiguration(ReportsOptions.Section).ValidateOnStart()
            .Validate(o => o.PollInterval >= TimeSpan.FromSeconds(1) && o.PollInterval <= TimeSpan.FromHours(1),
                "Reports:PollInterval must be between 1 second and 1 hour.");
        services.AddSingleton<IEmailSender, SmtpEmailSender>();
        services.AddSingleton<EmailMetrics>();
        services.AddScoped<OwnerNotifications>();
        services.AddSingleton<OwnerNoticeQueue>();
        services.AddHostedService(sp => sp.GetRequiredService<OwnerNoticeQueue>());
        services.AddScoped<ReportScheduleService>();
        services.AddSingleton<ReportSignal>();
        services.AddHostedService<ScheduledReports>();
        services.AddIntegrationStatus<EmailStatus>();
        services.AddIntegrationStatus<AccountingReportStatus>();
        return services;
    }
}
