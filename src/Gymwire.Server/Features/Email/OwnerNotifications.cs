namespace Gymwire.Features.Email;

/// <summary>
/// Emails a gym's owners about things they must act on. Other features call it (the webhooks feature, when it disables
/// a failing subscription). It never throws for a mail problem: the attempt is recorded (the Email tile shows the last
/// failure) and the result says whether it was sent, so a caller's own work is never undone by a mail outage. A server
/// without SMTP sends no notification and records none.
/// </summary>
public sealed partial class OwnerNotifications(GymwireDbContext db, IEmailSender sender, TimeProvider clock, ILogger<OwnerNotifications> logger)
{
    /// <summary>
    /// Sends <paramref name="subject"/> and <paramref name="body"/> (plain text) to every owner of the gym. Without an
    /// SMTP server (the default) it sends and records nothing: the dashboard shows the same, and nothing failed.
    /// </summary>
    public async Task<bool> NotifyAsync(Guid gymId, string subject, string body, CancellationToken ct)
    {
        if (!sender.IsConfigured)
        {
            LogNotConfigured(logger, subject, gymId);
            return false;
        }
        return await SendToOwnersAsync(gymId, "notification", new EmailMessage([], subject, body), ct);
    }

    /// <summary>For the webhooks feature: Gymwire switched a subscription off (a 410 Gone, or failing for days).</summary>
    public Task<bool> WebhookDisabledAsync(Guid gymId, string webhookUrl, string reason, CancellationToken ct) =>
        NotifyAsync(gymId, "Gymwire disabled a failing webhook",
            $"""
            Gymwire stopped sending events to this webhook:

              {webhookUrl}

            Why: {reason}.

            While it is disabled, new events are not queued for it, and the deliveries that were waiting have ended
            as undeliverable. Fix the receiving endpoint, then enable the webhook again (dashboard: Webhooks, open the
            webhook, Enable; or PATCH /api/gym/webhooks/ID with "is_active": true). Its page's "Retry all failed"
            then sends the deliveries that ended; events from while it was disabled are not sent.
            """, ct);

    /// <summary>For the API-key sweep: it switched off the webhooks a key created, because the key expired or lacks <c>read</c>.</summary>
    public Task<bool> KeyWebhooksDeactivatedAsync(KeyWebhooksNotice notice, CancellationToken ct)
    {
        var (subject, reason) = notice.Why switch
        {
            KeyWebhooksNotice.Cause.Expired => ("Gymwire disabled the webhooks of an expired API key", "the key expired."),
            _ => ("Gymwire disabled the webhooks of an API key without read",
                "the key lacks the 'read' scope, which a key's webhooks need: through them it would receive the gym's events that it may not read."),
        };
        var them = notice.Webhooks.Count == 1 ? "this webhook" : $"these {notice.Webhooks.Count} webhooks";
        var list = string.Join('\n', notice.Webhooks.Select(w => w.Description is { } description ? $"  {w.Url} ({description})" : $"  {w.Url}"));
        return NotifyAsync(notice.GymId, subject,
            $"""
            Gymwire stopped delivering events to {them}, which the API key '{notice.KeyName}' ({notice.KeyPrefix}…) created:

            {list}

            Reason: {reason}

            Their queued deliveries were ended. If the integration should go on, give it a new API key with the read and
            write scopes and let it subscribe again; or switch a webhook back on yourself
            (dashboard: Webhooks, open the webhook, Enable; or PATCH /api/gym/webhooks/ID with "is_active": true),
            and it stays on.
            """, ct);
    }

    internal async Task<bool> SendToOwnersAsync(Guid gymId, string kind, EmailMessage message, CancellationToken ct) =>
        await SendAsync(gymId, kind, message with { To = await OwnerAddresses(db, gymId).ToListAsync(ct) }, ct);

    /// <summary>The addresses of the gym's owners now, in the order they were added.</summary>
    internal static IQueryable<string> OwnerAddresses(GymwireDbContext db, Guid gymId) =>
        db.Users.AsNoTracking().Where(o => o.GymId == gymId && o.Email != null).OrderBy(o => o.CreatedAt).Select(o => o.Email!);

    /// <summary>Sends to the message's own recipients (a scheduled report's chosen addresses), recorded as every email is.</summary>
    internal async Task<bool> SendAsync(Guid gymId, string kind, EmailMessage message, CancellationToken ct)
    {
        var recipients = message.To;
        var now = clock.GetUtcNow().UtcDateTime;
        string? error = null;
        IReadOnlyList<string> refused = [];
        if (recipients.Count == 0)
        {
            error = "The gym has no owner with an email address.";
        }
        else
        {
            try
            {
                refused = await sender.SendAsync(message, ct);
            }
            catch (EmailException e)
            {
                error = e.Message;
            }
        }
        // Sent to the others, but recorded as failed naming the refused ones, so the Email tile shows the owner what to fix.
        var refusal = refused.Count == 0 ? null : $"Sent to the other recipients; the SMTP server refused {string.Join(", ", refused)}";
        db.EmailDeliveries.Add(new EmailDelivery
        {
            Id = Guid.CreateVersion7(now), GymId = gymId, Kind = kind, Recipients = ColumnText.Fit(string.Join(", ", recipients), 2000),
            Subject = ColumnText.Fit(message.Subject, 500), Status = error is null && refusal is null ? "sent" : "failed",
            Error = (error ?? refusal) is { } reason ? ColumnText.Fit(reason, 1000) : null, CreatedAt = now,
        });
        try
        {
            // Not cancelled by shutdown: once the server accepted the message, its record must say so.
            await db.SaveChangesAsync(CancellationToken.None);
        }
        catch (Exception e) when (error is null)
        {
            // Sent all the same: a caller that took it for a failure would send it again (a scheduled report would).
            LogUnrecorded(logger, e, kind, gymId);
        }
        if (error is null)
        {
            LogSent(logger, kind, gymId, recipients.Count - refused.Count);
            if (refusal is not null)
            {
                LogFailed(logger, kind, gymId, refusal);
            }
        }
        else
        {
            LogFailed(logger, kind, gymId, error);
        }
        return error is null;
    }


    [LoggerMessage(EventId = 8301, Level = LogLevel.Information, Message = "Emailed a {Kind} of gym {GymId} to {Count} recipient(s)")]
    private static partial void LogSent(ILogger logger, string kind, Guid gymId, int count);

    [LoggerMessage(EventId = 8303, Level = LogLevel.Error, Message = "Emailed a {Kind} of gym {GymId}, but could not record it in email_deliveries")]
    private static partial void LogUnrecorded(ILogger logger, Exception exception, string kind, Guid gymId);

    [LoggerMessage(EventId = 8304, Level = LogLevel.Debug, Message = "Did not email \"{Subject}\" to the owners of gym {GymId}: no SMTP server is configured")]
    private static partial void LogNotConfigured(ILogger logger, string subject, Guid gymId);

    [LoggerMessage(EventId = 8302, Level = LogLevel.Warning, Message = "Could not email a {Kind} of gym {GymId}: {Error}")]
    private static partial void LogFailed(ILogger logger, string kind, Guid gymId, string error);
}

/// <summary>What the API-key sweep switched off, for the owner's email: the key, why, and its webhooks (URL and description).</summary>
public sealed record KeyWebhooksNotice(Guid GymId, Guid KeyId, string KeyName, string KeyPrefix, KeyWebhooksNotice.Cause Why, IReadOnlyList<KeyWebhooksNotice.Webhook> Webhooks)
{
    public enum Cause
    {
        Expired,
        LacksRead,
    }

    public sealed record Webhook(string Url, string? Description);
}
