using Gymwire.Features.Sms;

namespace Gymwire.Tests.Sms;

public sealed class SmsOptionsValidatorTests
{
    private static readonly SmsOptionsValidator Validator = new();

    [Fact]
    public void Every_failure_names_its_setting_in_the_order_of_the_settings()
    {
        var result = Validator.Validate(null, new SmsOptions
        {
            Provider = "carrier-pigeon",
            MaxAttempts = 0,
            RetryDelay = TimeSpan.FromHours(2),
            RequestTimeout = TimeSpan.FromMinutes(3),
            PollInterval = TimeSpan.FromMilliseconds(500),
        });
        Assert.True(result.Failed);
        Assert.Equal(
        [
            "Sms:Provider must be empty (messages stay queued), 'twilio' or 'log'.",
            "Sms:MaxAttempts must be between 1 and 100.",
            "Sms:RetryDelay must be between 1 second and 1 hour.",
            "Sms:RequestTimeout must be between 1 second and 2 minutes.",
            "Sms:PollInterval must be between 1 second and 1 hour.",
        ], result.Failures);
    }

    [Fact]
    public void The_range_limits_are_allowed()
    {
        Assert.True(Validator.Validate(null, new SmsOptions()).Succeeded);
        Assert.True(Validator.Validate(null, new SmsOptions
        {
            MaxAttempts = 1, RetryDelay = TimeSpan.FromSeconds(1), RequestTimeout = TimeSpan.FromSeconds(1), PollInterval = TimeSpan.FromSeconds(1),
        }).Succeeded);
        Assert.True(Validator.Validate(null, new SmsOptions
        {
            MaxAttempts = 100, RetryDelay = TimeSpan.FromHours(1), RequestTimeout = TimeSpan.FromMinutes(2), PollInterval = TimeSpan.FromHours(1),
        }).Succeeded);
    }

    [Fact]
    public void Twilio_needs_its_account_token_and_sender()
    {
        var result = Validator.Validate(null, new SmsOptions { Provider = SmsOptions.TwilioProvider, Twilio = new TwilioOptions { BaseUrl = "ftp://x" } });
        Assert.Equal(
        [
            "Sms:Twilio:BaseUrl must be an absolute http(s) URL.",
            "Sms:Twilio:AccountSid is required when Sms:Provider is 'twilio'.",
            "Sms:Twilio:AuthToken is required when Sms:Provider is 'twilio'.",
            "Sms:Twilio:From is required when Sms:Provider is 'twilio' (an E.164 number or a Messaging Service SID).",
        ], result.Failures);
    }
}
