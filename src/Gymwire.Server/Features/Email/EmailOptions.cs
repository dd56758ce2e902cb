namespace Gymwire.Features.Email;

/// <summary>The <c>Email</c> configuration section: the SMTP server Gymwire sends owner notifications and reports through.</summary>
public sealed class EmailOptions
{
    public const string Section = "Email";

    public SmtpOptions Smtp { get; set; } = new();

    public bool IsConfigured => !string.IsNullOrWhiteSpace(Smtp.Host);
}

public sealed class SmtpOptions
{
    /// <summary>Empty: email is off (notifications are logged as not sent, reports cannot be scheduled).</summary>
    public string Host { get; set; } = "";
    public int Port { get; set; } = 587;
    public string Username { get; set; } = "";
    public string Password { get; set; } = "";
    /// <summary>The sender, e.g. <c>Gymwire &lt;reports@example.com&gt;</c>.</summary>
    public string From { get; set; } = "";
    /// <summary>TLS: implicit on port 465, STARTTLS otherwise. Off only for a local relay.</summary>
    public bool UseTls { get; set; } = true;
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);
}

public sealed class EmailOptionsValidator : IValidateOptions<EmailOptions>
{
    public ValidateOptionsResult Validate(string? name, EmailOptions o)
    {
        if (!o.IsConfigured)
        {
            return ValidateOptionsResult.Success;
        }
        var errors = new List<string>();
        if (o.Smtp.Port is < 1 or > 65535)
        {
            errors.Add("Email:Smtp:Port must be between 1 and 65535.");
        }
        if (!MimeKit.MailboxAddress.TryParse(o.Smtp.From, out _) || string.IsNullOrWhiteSpace(o.Smtp.From))
        {
            errors.Add("Email:Smtp:From is required when Email:Smtp:Host is set: a sender address such as 'Gymwire <reports@example.com>'.");
        }
        if (o.Smtp.Username.Length > 0 && o.Smtp.Password.Length == 0)
        {
            errors.Add("Email:Smtp:Password is required when Email:Smtp:Username is set.");
        }
        if (o.Smtp.Timeout < TimeSpan.FromSeconds(1) || o.Smtp.Timeout > TimeSpan.FromMinutes(5))
        {
            errors.Add("Email:Smtp:Timeout must be between 1 second and 5 minutes.");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
