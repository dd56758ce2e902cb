using System.ComponentModel.DataAnnotations;

namespace Gymwire.Features.Sms;

/// <summary>The <c>Sms</c> configuration section: which provider sends the SMS queue, and how.</summary>
public sealed class SmsOptions
{
    public const string Section = "Sms";
    public const string TwilioProvider = "twilio";
    public const string LogProvider = "log";

    /// <summary>Empty (messages stay queued), <c>twilio</c>, or <c>log</c> (development: recorded as sent, never delivered).</summary>
    public string Provider { get; set; } = "";

    /// <summary>Run the sender on this node (switch off on nodes that should only serve the API).</summary>
    public bool SenderEnabled { get; set; } = true;

    /// <summary>Tries per message before it is <c>failed</c> (transient failures only; permanent ones fail at once).</summary>
    [Range(1, 100, ErrorMessage = "Sms:MaxAttempts must be between 1 and 100.")]
    public int MaxAttempts { get; set; } = 5;

    /// <summary>Wait after the first transient failure; doubles each attempt, at most an hour.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "Sms:RetryDelay must be between 1 second and 1 hour.")]
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Timeout of one provider request.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:02:00", ErrorMessage = "Sms:RequestTimeout must be between 1 second and 2 minutes.")]
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the sender looks for work when nothing wakes it (messages queued by another node).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "Sms:PollInterval must be between 1 second and 1 hour.")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Whether a 5xx answer or a timeout is retried. The provider may have accepted the message before failing, so
    /// Twilio's provider first looks for it in Twilio's messages to the number (same body, created since the uncertain
    /// attempt began) and records that one as sent; only when Twilio has none is it sent again, and when the look-up
    /// fails it waits for the next attempt. Switch off to have such messages fail for review instead.
    /// </summary>
    public bool RetryUncertainFailures { get; set; } = true;

    public TwilioOptions Twilio { get; set; } = new();
}

public sealed class TwilioOptions
{
    /// <summary>Twilio's API root; a Twilio-compatible service (or a test stand-in) can be named instead.</summary>
    public string BaseUrl { get; set; } = "https://api.twilio.com";
    public string AccountSid { get; set; } = "";
    public string AuthToken { get; set; } = "";
    /// <summary>The sender: an E.164 number, or a Messaging Service SID (<c>MG…</c>).</summary>
    public string From { get; set; } = "";
}

/// <summary>The <see cref="SmsOptions"/> ranges and the rules that depend on the provider.</summary>
public sealed class SmsOptionsValidator : IValidateOptions<SmsOptions>
{
    public ValidateOptionsResult Validate(string? name, SmsOptions o)
    {
        var errors = new List<string>();
        if (o.Provider is not ("" or SmsOptions.TwilioProvider or SmsOptions.LogProvider))
        {
            errors.Add("Sms:Provider must be empty (messages stay queued), 'twilio' or 'log'.");
        }
        // The ranges are the [Range] attributes above; their messages are kept as they are (not the framework's
        // "DataAnnotation validation failed" wording), in the order of the properties.
        var ranges = new List<ValidationResult>();
        Validator.TryValidateObject(o, new ValidationContext(o), ranges, validateAllProperties: true);
        errors.AddRange(ranges.Select(r => r.ErrorMessage ?? "invalid"));
        if (o.Provider == SmsOptions.TwilioProvider)
        {
            var t = o.Twilio;
            if (!Uri.TryCreate(t.BaseUrl, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http"))
            {
                errors.Add("Sms:Twilio:BaseUrl must be an absolute http(s) URL.");
            }
            if (string.IsNullOrWhiteSpace(t.AccountSid))
            {
                errors.Add("Sms:Twilio:AccountSid is required when Sms:Provider is 'twilio'.");
            }
            if (string.IsNullOrWhiteSpace(t.AuthToken))
            {
                errors.Add("Sms:Twilio:AuthToken is required when Sms:Provider is 'twilio'.");
            }
            if (string.IsNullOrWhiteSpace(t.From))
            {
                errors.Add("Sms:Twilio:From is required when Sms:Provider is 'twilio' (an E.164 number or a Messaging Service SID).");
            }
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
