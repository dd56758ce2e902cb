using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>A delivery a worker has claimed.</summary>
public readonly record struct ClaimedDelivery(Guid Id, Guid SubscriptionId);

/// <summary>What one attempt produced.</summary>
public sealed record AttemptOutcome(WebhookAttempt Attempt, string DeliveryStatus);

/// <summary>
/// Claims due deliveries, makes one HTTP attempt, and records it: the attempt row, the delivery's next
/// state (delivered, retry at, undeliverable) and the subscription's health, in one write.
/// </summary>
public sealed partial class WebhookSender(
    IServiceScopeFactory scopes,
    IHttpClientFactory httpClients,
    WebhookSecretProtector secrets,
    IOptions<WebhookOptions> options,
    TimeProvider clock,
    ILogger<WebhookSender> logger)
{
    public const string HttpClientName = "Gymwire.Webhooks";
    public const int MaxResponseExcerptBytes = 64 * 1024;

    private static readonly string[] KeptResponseHeaders = ["content-type", "content-length", "location", "retry-after", "server", "date"];

    private readonly WebhookOptions _options = options.Value;

    /// <summary>
    /// Atomically claims up to <paramref name="limit"/> due deliveries for <see cref="WebhookOptions.EffectiveClaimLease"/>.
    /// PostgreSQL skips rows other nodes hold (<c>FOR UPDATE SKIP LOCKED</c>); SQLite has one writer, so a
    /// single UPDATE is atomic. Expired claims (a worker that died) are due again.
    /// </summary>
    public async Task<IReadOnlyList<ClaimedDelivery>> ClaimAsync(int limit, Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var now = clock.GetUtcNow().UtcDateTime;
        var until = now + _options.EffectiveClaimLease;
        var token = Guid.NewGuid();
        if (db.Provider == DatabaseProvider.Postgres)
        {
            await db.Database.ExecuteSqlAsync($"""
                UPDATE webhook_deliveries SET locked_until = {until}, claim_token = {token}
                WHERE id IN (
                    SELECT id FROM webhook_deliveries
                    WHERE status IN ('pending', 'retrying') AND next_attempt_at <= {now}
                      AND (locked_until IS NULL OR locked_until <= {now})
                      AND NOT (subscription_id = ANY({skipSubscriptions})) AND NOT (id = ANY({skipDeliveries}))
                    ORDER BY next_attempt_at
                    LIMIT {limit}
                    FOR UPDATE SKIP LOCKED)
                """, ct);
        }
        else
        {
            await db.WebhookDeliveries
                .Where(d => Due(db, now, skipSubscriptions, skipDeliveries).OrderBy(x => x.NextAttemptAt).Take(limit).Select(x => x.Id).Contains(d.Id))
                .ExecuteUpdateAsync(s => s.SetProperty(d => d.LockedUntil, until).SetProperty(d => d.ClaimToken, token), ct);
        }
        return await db.WebhookDeliveries.AsNoTracking().Where(d => d.ClaimToken == token)
            .OrderBy(d => d.NextAttemptAt).Select(d => new ClaimedDelivery(d.Id, d.SubscriptionId)).ToListAsync(ct);
    }

    private static IQueryable<WebhookDelivery> Due(GymwireDbContext db, DateTime now, Guid[] skipSubscriptions, Guid[] skipDeliveries) =>
        db.WebhookDeliveries.Where(x => (x.Status == DeliveryStatus.Pending || x.Status == DeliveryStatus.Retrying)
            && x.NextAttemptAt <= now && (x.LockedUntil == null || x.LockedUntil <= now)
            && !skipSubscriptions.Contains(x.SubscriptionId) && !skipDeliveries.Contains(x.Id));

    /// <summary>When the next delivery this worker could claim becomes due (a retry, or an expired claim), if any.</summary>
    public async Task<DateTime?> NextDueAsync(Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        return await db.WebhookDeliveries.AsNoTracking()
            .Where(x => (x.Status == DeliveryStatus.Pending || x.Status == DeliveryStatus.Retrying) && x.NextAttemptAt != null
                && !skipSubscriptions.Contains(x.SubscriptionId) && !skipDeliveries.Contains(x.Id))
            .Select(x => x.LockedUntil ?? x.NextAttemptAt)
            .OrderBy(x => x)
            .FirstOrDefaultAsync(ct);
    }

    /// <summary>Gives claims back without an attempt (shutdown, or a claim over the per-endpoint cap).</summary>
    public async Task ReleaseAsync(IReadOnlyCollection<Guid> ids, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        await db.WebhookDeliveries.Where(d => ids.Contains(d.Id))
            .ExecuteUpdateAsync(s => s.SetProperty(d => d.LockedUntil, (DateTime?)null).SetProperty(d => d.ClaimToken, (Guid?)null), ct);
    }

    /// <summary>
    /// Makes one attempt of a claimed delivery and records it. Cancelling <paramref name="ct"/> (shutdown)
    /// abandons the attempt unrecorded and releases the claim, so another worker or the next start retries it.
    /// </summary>
    public async Task<AttemptOutcome?> AttemptAsync(Guid deliveryId, CancellationToken ct)
    {
        try
        {
            return await AttemptCoreAsync(deliveryId, ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            await ReleaseAsync([deliveryId], CancellationToken.None);
            throw;
        }
    }

    private async Task<AttemptOutcome?> AttemptCoreAsync(Guid deliveryId, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var delivery = await db.WebhookDeliveries.FirstOrDefaultAsync(d => d.Id == deliveryId, ct);
        if (delivery is null || delivery.Status is DeliveryStatus.Delivered or DeliveryStatus.Undeliverable)
        {
            return null;
        }
        var subscription = await db.WebhookSubscriptions.FirstAsync(s => s.Id == delivery.SubscriptionId, ct);
        var now = clock.GetUtcNow().UtcDateTime;
        if (!subscription.IsActive)
        {
            // Deliveries queued for a subscription that has since been deactivated are not sent.
            delivery.Status = DeliveryStatus.Undeliverable;
            delivery.LastError = "The webhook is inactive";
            delivery.NextAttemptAt = null;
            delivery.LockedUntil = null;
            delivery.ClaimToken = null;
            await db.SaveChangesAsync(CancellationToken.None);
            return null;
        }

        var trigger = delivery.AttemptCount > 0 ? "retry" : delivery.LastAttemptAt is not null ? "redeliver" : delivery.IsTest ? "test" : "initial";
        var attempt = new WebhookAttempt
        {
            Id = Guid.CreateVersion7(now),
            GymId = delivery.GymId,
            DeliveryId = delivery.Id,
            Number = await db.WebhookAttempts.CountAsync(a => a.DeliveryId == delivery.Id, ct) + 1,
            AttemptedAt = now,
            Trigger = trigger,
        };
        var wasActive = subscription.IsActive;
        var retryAfter = await SendAsync(delivery, subscription, attempt, ct);
        // Retries count from the end of the failed attempt.
        var finished = clock.GetUtcNow().UtcDateTime;

        var succeeded = attempt.StatusCode is >= 200 and < 300;
        delivery.AttemptCount++;
        delivery.LastAttemptAt = now;
        delivery.LastStatusCode = attempt.StatusCode;
        delivery.LastError = Truncate(attempt.Error, 1000);
        delivery.LockedUntil = null;
        delivery.ClaimToken = null;
        var schedule = _options.EffectiveRetrySchedule;
        if (succeeded)
        {
            delivery.Status = DeliveryStatus.Delivered;
            delivery.NextAttemptAt = null;
            subscription.FailingSince = null;
            LogDelivered(logger, delivery.Id, subscription.Id, attempt.StatusCode!.Value, attempt.DurationMs);
        }
        else
        {
            subscription.FailingSince ??= now;
            if (attempt.StatusCode == StatusCodes.Status410Gone)
            {
                Deactivate(subscription, "The endpoint answered 410 Gone", finished);
                delivery.Status = DeliveryStatus.Undeliverable;
                delivery.NextAttemptAt = null;
            }
            else if (delivery.IsTest || delivery.AttemptCount > schedule.Count)
            {
                delivery.Status = DeliveryStatus.Undeliverable;
                delivery.NextAttemptAt = null;
                LogUndeliverable(logger, delivery.Id, subscription.Id, delivery.AttemptCount);
            }
            else
            {
                delivery.Status = DeliveryStatus.Retrying;
                delivery.NextAttemptAt = finished + RetryDelay(schedule[delivery.AttemptCount - 1], retryAfter);
                LogRetrying(logger, delivery.Id, subscription.Id, attempt.StatusCode, attempt.Error, delivery.NextAttemptAt.Value);
            }
            if (subscription.IsActive && finished - subscription.FailingSince >= _options.AutoDisableAfter)
            {
                Deactivate(subscription,
                    $"Every delivery attempt has failed since {GymwireJson.FormatTimestamp(subscription.FailingSince.Value)} (Webhooks:AutoDisableAfter is {_options.AutoDisableAfter})", finished);
            }
        }
        db.WebhookAttempts.Add(attempt);
        await db.SaveChangesAsync(CancellationToken.None);
        if (wasActive && !subscription.IsActive)
        {
            // Tell the owner by email (when Email is configured); a mail failure is recorded, never thrown.
            await scope.ServiceProvider.GetRequiredService<Gymwire.Features.Email.OwnerNotifications>()
                .WebhookDisabledAsync(subscription.GymId, subscription.Url, subscription.DisabledReason ?? "", CancellationToken.None);
        }
        return new AttemptOutcome(attempt, delivery.Status);
    }

    private void Deactivate(WebhookSubscription subscription, string reason, DateTime now)
    {
        subscription.IsActive = false;
        subscription.DisabledReason = reason;
        subscription.DisabledAt = now;
        subscription.UpdatedAt = now;
        LogDeactivated(logger, subscription.Id, reason);
    }

    private TimeSpan RetryDelay(TimeSpan scheduled, TimeSpan? retryAfter)
    {
        if (retryAfter is { } asked)
        {
            return asked < _options.MinRetryAfter ? _options.MinRetryAfter : asked > _options.MaxRetryAfter ? _options.MaxRetryAfter : asked;
        }
        // Jitter spreads the retries of a burst that failed together.
        return scheduled * (1 + Random.Shared.NextDouble() * _options.RetryJitter);
    }

    /// <summary>POSTs the delivery and fills in <paramref name="attempt"/>; returns the receiver's Retry-After, if any.</summary>
    private async Task<TimeSpan?> SendAsync(WebhookDelivery delivery, WebhookSubscription subscription, WebhookAttempt attempt, CancellationToken ct)
    {
        if (!_options.AllowHttp && !subscription.Url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            // Saved while Webhooks:AllowHttp was on; the operator has since turned it off.
            attempt.Error = "Plain http:// is not allowed (Webhooks:AllowHttp is false): change the webhook URL to https://";
            return null;
        }
        var body = Encoding.UTF8.GetBytes(delivery.Payload);
        using var request = new HttpRequestMessage(HttpMethod.Post, subscription.Url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.TryAddWithoutValidation("X-CombatScore-Event", delivery.Event);
        foreach (var (name, value) in WebhookSigner.Headers(secrets.SigningSecrets(subscription, attempt.AttemptedAt), delivery.Id.ToString(), clock.GetUtcNow(), body))
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        request.Headers.UserAgent.ParseAdd("Gymwire-Webhooks/1.0");

        // The per-attempt timeout measures real network time, not the (possibly simulated) clock of the schedule.
        using var timeout = new CancellationTokenSource(_options.Timeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        var started = Stopwatch.GetTimestamp();
        TimeSpan? retryAfter = null;
        try
        {
            using var client = httpClients.CreateClient(HttpClientName);
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token);
            attempt.StatusCode = (int)response.StatusCode;
            attempt.ResponseHeaders = SelectHeaders(response);
            retryAfter = response.Headers.RetryAfter switch
            {
                { Delta: { } delta } => delta,
                { Date: { } date } => date - clock.GetUtcNow(),
                _ => null,
            };
            try
            {
                (attempt.ResponseBody, attempt.ResponseBodyTruncated) = await ReadExcerptAsync(response, linked.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or HttpRequestException or IOException && !ct.IsCancellationRequested)
            {
                attempt.Error = timeout.IsCancellationRequested
                    ? $"Timed out reading the response body after {_options.Timeout.TotalSeconds:0.###} s"
                    : "The response body could not be read: " + e.Message;
            }
            if (attempt.StatusCode is >= 300 and < 400 && attempt.Error is null)
            {
                attempt.Error = "Redirects are not followed: answer 2xx from the webhook URL itself";
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            attempt.Error = $"Timed out after {_options.Timeout.TotalSeconds:0.###} s";
        }
        catch (HttpRequestException e)
        {
            attempt.Error = Describe(e);
            if (e.InnerException is EgressRefusedException)
            {
                LogEgressRefused(logger, delivery.Id, subscription.Id, attempt.Error);
            }
        }
        catch (EgressRefusedException e)
        {
            attempt.Error = e.Message;
            LogEgressRefused(logger, delivery.Id, subscription.Id, attempt.Error);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            // A connect-level timeout can surface before the attempt's own token reports it.
            attempt.Error = $"Timed out after {_options.Timeout.TotalSeconds:0.###} s";
        }
        catch (Exception e) when (!ct.IsCancellationRequested && e is InvalidOperationException or UriFormatException or NotSupportedException or IOException)
        {
            attempt.Error = "The request could not be sent: " + e.Message;
        }
        attempt.DurationMs = (int)Math.Min(int.MaxValue, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return retryAfter;
    }

    private static string Describe(HttpRequestException e)
    {
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            switch (inner)
            {
                case EgressRefusedException refused:
                    return refused.Message;
                case SocketException socket:
                    return socket.SocketErrorCode switch
                    {
                        SocketError.ConnectionRefused => "Connection refused",
                        SocketError.HostNotFound or SocketError.NoData => "Host not found",
                        SocketError.TimedOut => "Connection timed out",
                        _ => "Network error: " + socket.SocketErrorCode,
                    };
                default:
                    break;
            }
        }
        return e.HttpRequestError switch
        {
            HttpRequestError.NameResolutionError => "Host not found",
            HttpRequestError.SecureConnectionError => "TLS handshake failed: " + e.Message,
            HttpRequestError.ConnectionError => "Connection failed: " + e.Message,
            _ => e.Message,
        };
    }

    private static string SelectHeaders(HttpResponseMessage response)
    {
        var kept = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            var lower = name.ToLowerInvariant();
            if (KeptResponseHeaders.Contains(lower))
            {
                kept[lower] = Truncate(string.Join(", ", values), 500)!;
            }
        }
        return JsonSerializer.Serialize(kept, GymwireJson.Options);
    }

    /// <summary>Reads at most 64 KiB of the body, then stops: the rest is never read, let alone buffered.</summary>
    private static async Task<(string Body, bool Truncated)> ReadExcerptAsync(HttpResponseMessage response, CancellationToken ct)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        var buffer = new byte[MaxResponseExcerptBytes];
        var total = 0;
        int read;
        while (total < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(total), ct)) > 0)
        {
            total += read;
        }
        var truncated = total == buffer.Length && await stream.ReadAsync(new byte[1], ct) > 0;
        // PostgreSQL text cannot hold NUL; a binary body is only an excerpt for a human anyway.
        return (Encoding.UTF8.GetString(buffer, 0, total).Replace('\0', '\uFFFD'), truncated);
    }

    private static string? Truncate(string? value, int max) => value is null || value.Length <= max ? value : value[..max];

    [LoggerMessage(EventId = 5100, Level = LogLevel.Debug, Message = "Webhook delivery {DeliveryId} to subscription {SubscriptionId} delivered: {StatusCode} in {DurationMs} ms")]
    private static partial void LogDelivered(ILogger logger, Guid deliveryId, Guid subscriptionId, int statusCode, int durationMs);

    [LoggerMessage(EventId = 5101, Level = LogLevel.Information, Message = "Webhook delivery {DeliveryId} to subscription {SubscriptionId} failed ({StatusCode}, {Error}); retry at {NextAttemptAt:o}")]
    private static partial void LogRetrying(ILogger logger, Guid deliveryId, Guid subscriptionId, int? statusCode, string? error, DateTime nextAttemptAt);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} to subscription {SubscriptionId} is undeliverable after {Attempts} attempts")]
    private static partial void LogUndeliverable(ILogger logger, Guid deliveryId, Guid subscriptionId, int attempts);

    [LoggerMessage(EventId = 5103, Level = LogLevel.Warning, Message = "Webhook subscription {SubscriptionId} deactivated: {Reason}")]
    private static partial void LogDeactivated(ILogger logger, Guid subscriptionId, string reason);

    [LoggerMessage(EventId = 5104, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} to subscription {SubscriptionId} refused by the egress guard: {Reason}")]
    private static partial void LogEgressRefused(ILogger logger, Guid deliveryId, Guid subscriptionId, string reason);
}
