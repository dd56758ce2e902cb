namespace Gymwire.Features.Webhooks;

/// <summary>The three states a person sees for a webhook, the same in the list, on its page and on the Integrations tile.</summary>
public enum WebhookState
{
    /// <summary>Enabled, and its latest attempt succeeded (or it has had none yet).</summary>
    Active,
    /// <summary>
    /// Enabled, but its latest attempt failed and none has succeeded since (<see cref="WebhookSubscription.FailingSince"/>
    /// is set): a scheduled retry, a redelivery or a test. A paused endpoint and a delivery that ended undeliverable are
    /// both Failing, because both follow a failed attempt. One successful attempt makes the webhook Active again.
    /// </summary>
    Failing,
    /// <summary>Disabled by the owner, or by Gymwire with a reason (410 Gone, failing too long, its API key revoked).</summary>
    Disabled,
}

public static class WebhookStates
{
    public static WebhookState Of(bool isActive, DateTime? failingSince) =>
        !isActive ? WebhookState.Disabled : failingSince is null ? WebhookState.Active : WebhookState.Failing;

    public static WebhookState Of(WebhookSubscription s) => Of(s.IsActive, s.FailingSince);
}
