using System.ComponentModel.DataAnnotations;

namespace Gymwire.Features.Gyms;

/// <summary>The <c>Auth</c> configuration section: owner sign-in.</summary>
public sealed class AuthOptions
{
    public const string Section = "Auth";

    /// <summary>How long an API session token from <c>POST /api/auth/login</c> stays valid.</summary>
    [Range(typeof(TimeSpan), "00:05:00", "90.00:00:00", ErrorMessage = "Auth:SessionLifetime must be between 5 minutes and 90 days.")]
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Failed password attempts before an owner account is locked out for <see cref="LockoutDuration"/>.</summary>
    [Range(1, 100, ErrorMessage = "Auth:MaxFailedAttempts must be between 1 and 100.")]
    public int MaxFailedAttempts { get; set; } = 10;

    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00", ErrorMessage = "Auth:LockoutDuration must be between 1 second and 1 day.")]
    public TimeSpan LockoutDuration { get; set; } = TimeSpan.FromMinutes(15);
}
