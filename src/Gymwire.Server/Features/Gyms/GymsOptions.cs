using System.ComponentModel.DataAnnotations;

namespace Gymwire.Features.Gyms;

/// <summary>The <c>Auth</c> configuration section: owner sign-in and sessions (rules in docs/configuration.md).</summary>
public sealed class AuthOptions
{
    public const string Section = "Auth";

    /// <summary>How long an API session token from <c>POST /api/auth/login</c> stays valid.</summary>
    [Range(typeof(TimeSpan), "00:05:00", "90.00:00:00", ErrorMessage = "Auth:SessionLifetime must be between 5 minutes and 90 days.")]
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Failed sign-ins for one email within <see cref="LockoutDuration"/> that lock it for <see cref="LockoutDuration"/>.</summary>
    [Range(1, 100, ErrorMessage = "Auth:MaxFailedAttempts must be between 1 and 100.")]
    public int MaxFailedAttempts { get; set; } = 10;

    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00", ErrorMessage = "Auth:LockoutDuration must be between 1 second and 1 day.")]
    public TimeSpan LockoutDuration { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Failed sign-ins from one client address within <see cref="ClientLockoutDuration"/> that block it for that long.</summary>
    [Range(1, 10_000, ErrorMessage = "Auth:ClientMaxFailedAttempts must be between 1 and 10000.")]
    public int ClientMaxFailedAttempts { get; set; } = 20;

    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00", ErrorMessage = "Auth:ClientLockoutDuration must be between 1 second and 1 day.")]
    public TimeSpan ClientLockoutDuration { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Password hashes one node verifies at once (0: the processor count); more wait briefly, then get 429.</summary>
    [Range(0, 1024, ErrorMessage = "Auth:MaxConcurrentPasswordChecks must be between 0 and 1024.")]
    public int MaxConcurrentPasswordChecks { get; set; }

    /// <summary>A dashboard cookie unused for this long expires (sliding).</summary>
    [Range(typeof(TimeSpan), "00:05:00", "7.00:00:00", ErrorMessage = "Auth:DashboardIdleTimeout must be between 5 minutes and 7 days.")]
    public TimeSpan DashboardIdleTimeout { get; set; } = TimeSpan.FromHours(12);

    /// <summary>A dashboard session ends this long after sign-in, however active (absolute).</summary>
    [Range(typeof(TimeSpan), "00:05:00", "90.00:00:00", ErrorMessage = "Auth:DashboardSessionLifetime must be between 5 minutes and 90 days.")]
    public TimeSpan DashboardSessionLifetime { get; set; } = TimeSpan.FromDays(7);

    /// <summary>How long a "forgot password" link works (it also works only once).</summary>
    [Range(typeof(TimeSpan), "00:05:00", "1.00:00:00", ErrorMessage = "Auth:PasswordResetLifetime must be between 5 minutes and 1 day.")]
    public TimeSpan PasswordResetLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// The dashboard's public URL (e.g. <c>https://gymwire.example.com</c>) for links in emails; when empty, the address the
    /// server listens on, if it names a host. Never taken from a request's Host header.
    /// </summary>
    [Url(ErrorMessage = "Auth:PublicUrl must be an absolute http(s) URL.")]
    public string? PublicUrl { get; set; }

    public int PasswordCheckConcurrency => MaxConcurrentPasswordChecks > 0 ? MaxConcurrentPasswordChecks : Environment.ProcessorCount;
}
