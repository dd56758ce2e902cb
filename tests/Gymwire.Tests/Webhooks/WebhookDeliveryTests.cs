using System.Net;
using System.Text.Json;
using Gymwire.Features.Events;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Gymwire.Tests.Webhooks;

/// <summary>Events reach real receivers over loopback, signed, with the documented retry and failure behaviour.</summary>
public abstract class WebhookDeliveryTests(WebhookFixture fx)
{
    public sealed class Sqlite(SqliteShortTimeout f) : WebhookDeliveryTests(f), IClassFixture<SqliteShortTimeout>;
    public sealed class Postgres(PostgresShortTimeout f) : WebhookDeliveryTests(f), IClassFixture<PostgresShortTimeout>;

    private void AssertSigned(ReceivedRequest request, string secret)
    {
        Assert.True(StandardWebhooksVerifier.VerifyCombatScore(secret, request.Headers, request.Body), "X-CombatScore-Signature does not verify");
        Assert.True(StandardWebhooksVerifier.Verify(secret, request.Headers, request.Body, fx.Clock.GetUtcNow()), "webhook-signature does not verify");
    }

    /// <summary>Causes every canonical catalog event once, through the public API.</summary>
    private static async Task EmitEveryEventAsync(TestGym gym)
    {
        using var owner = gym.Owner();
        var member = await (await owner.PostJsonAsync("/api/gym/members", new { name = "Bo", user_id = "user_bo" })).AssertStatusAsync(HttpStatusCode.Created);
        var memberId = member.GetProperty("id").GetGuid();
        await (await owner.PatchJsonAsync($"/api/gym/members/{memberId}", new { email = "bo@example.com" })).AssertStatusAsync(HttpStatusCode.OK);
        var plan = await (await owner.PostJsonAsync("/api/gym/plans", new { name = "Monthly", price_cents = 9900 })).AssertStatusAsync(HttpStatusCode.Created);
        var planId = plan.GetProperty("id").GetGuid();
        var membership = await (await owner.PostJsonAsync("/api/gym/memberships", new { user_id = "user_bo", plan_id = planId })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostAsync($"/api/gym/memberships/{membership.GetProperty("id").GetGuid()}/cancel", null)).AssertStatusAsync(HttpStatusCode.OK);
        var paid = await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_bo", amount_cents = 9900, plan_id = planId })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/payments", new { user_id = "user_bo", amount_cents = 9900, status = "failed", failure_reason = "card_declined" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostAsync($"/api/gym/payments/{paid.GetProperty("id").GetGuid()}/refund", null)).AssertStatusAsync(HttpStatusCode.OK);
        await (await owner.PostJsonAsync("/api/gym/sessions", new { user_id = "user_bo", session_type = "no-gi", date = "2026-04-16", duration_mins = 90 })).AssertStatusAsync(HttpStatusCode.Created);
        var cls = await (await owner.PostJsonAsync("/api/gym/classes", new { title = "Advanced No-Gi", discipline = "no-gi", day_of_week = 2, start_time = "18:00" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/checkins", new { user_id = "user_bo", class_schedule_id = cls.GetProperty("id").GetGuid() })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/leads", new { first_name = "John", last_name = "Doe", source = "zapier" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/contracts", new { user_id = "user_bo", title = "Agreement" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.DeleteAsync($"/api/gym/members/{memberId}")).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Every_catalog_event_reaches_subscribers_with_the_documented_payload_and_both_signatures()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var all = await gym.CreateWebhookAsync(receiver.Url("/all"));
        var aliases = await gym.CreateWebhookAsync(receiver.Url("/aliases"), "member.created", "member.deleted", "payment.successful", "checkin.created");
        var some = await gym.CreateWebhookAsync(receiver.Url("/some"), "member.joined", "payment.received", "member.created");

        await EmitEveryEventAsync(gym);

        var canonical = EventCatalog.Canonical.Select(e => e.Name).ToList();
        var received = await receiver.WaitForAsync("/all", canonical.Count);
        var outbox = await fx.WithDbAsync(db => db.OutboxEvents.AsNoTracking().Where(e => e.GymId == gym.GymId).ToDictionaryAsync(e => e.Id));
        Assert.Equal(canonical.Order(), received.Select(r => r.Json().GetProperty("event").GetString()!).Order());
        foreach (var request in received)
        {
            AssertSigned(request, all.Secret);
            var body = request.Json();
            Assert.Equal(["id", "event", "gym_id", "data", "timestamp"], body.EnumerateObject().Select(p => p.Name));
            Assert.False(request.Headers.ContainsKey("x-gymwire-test"), "a real event is marked as a test");
            var evt = outbox[body.GetProperty("id").GetGuid()];
            Assert.Equal(evt.Type, body.GetProperty("event").GetString());
            Assert.Equal(evt.Type, request.Header("X-CombatScore-Event"));
            Assert.Equal("application/json", request.Header("Content-Type"));
            Assert.Equal(gym.GymId, body.GetProperty("gym_id").GetGuid());
            Assert.Equal(evt.Data, body.GetProperty("data").GetRawText());
            // The documented shape: every field of the catalog's sample is present.
            foreach (var field in EventCatalog.ByName[evt.Type].SampleData.Keys)
            {
                Assert.True(body.GetProperty("data").TryGetProperty(field, out _), $"{evt.Type} lacks '{field}': {evt.Data}");
            }
            Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", body.GetProperty("timestamp").GetString());
            Assert.Equal(GymwireJsonTimestamp(evt.OccurredAt), body.GetProperty("timestamp").GetString());
            Assert.Equal("POST", request.Method);
        }
        Assert.Equal(canonical.Count, received.Select(r => r.Header("webhook-id")).Distinct().Count());

        var aliased = await receiver.WaitForAsync("/aliases", 4);
        Assert.Equal(["checkin.created", "member.created", "member.deleted", "payment.successful"], aliased.Select(r => r.Json().GetProperty("event").GetString()!).Order());
        Assert.All(aliased, r => Assert.Equal(r.Json().GetProperty("event").GetString(), r.Header("X-CombatScore-Event")));
        Assert.All(aliased, r => AssertSigned(r, aliases.Secret));

        // Naming an event and its alias still yields one delivery, under the canonical name.
        var named = await receiver.WaitForAsync("/some", 2);
        Assert.Equal(["member.joined", "payment.received"], named.Select(r => r.Json().GetProperty("event").GetString()!).Order());
        await fx.WaitForDeliveriesAsync(some.Id, 2, d => d.Status == DeliveryStatus.Delivered, "delivered");
        AssertNoWorkerErrors();
    }

    private static string GymwireJsonTimestamp(DateTime utc) => Gymwire.Infrastructure.GymwireJson.FormatTimestamp(utc);

    [Fact]
    public async Task Failed_deliveries_are_retried_after_5_min_30_min_and_2_h_then_undeliverable()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/down", new Reply(500, "down for maintenance"));
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/down"), "member.joined");
        var t0 = fx.Clock.GetUtcNow().UtcDateTime;
        await gym.AddMemberAsync("user_retry");

        await receiver.WaitForAsync("/down", 1);
        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.AttemptCount == 1, "first attempt recorded");
        Assert.Equal(DeliveryStatus.Retrying, delivery.Status);
        Assert.Equal(t0 + TimeSpan.FromMinutes(5), delivery.NextAttemptAt);

        fx.AdvanceAndWake(TimeSpan.FromMinutes(5));
        await receiver.WaitForAsync("/down", 2);
        delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.AttemptCount == 2, "second attempt recorded");
        Assert.Equal(t0 + TimeSpan.FromMinutes(35), delivery.NextAttemptAt);

        fx.AdvanceAndWake(TimeSpan.FromMinutes(30));
        await receiver.WaitForAsync("/down", 3);
        delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.AttemptCount == 3, "third attempt recorded");
        Assert.Equal(t0 + TimeSpan.FromMinutes(155), delivery.NextAttemptAt);

        fx.AdvanceAndWake(TimeSpan.FromHours(2));
        await receiver.WaitForAsync("/down", 4);
        delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Undeliverable, "undeliverable");
        Assert.Equal(4, delivery.AttemptCount);
        Assert.Null(delivery.NextAttemptAt);

        var attempts = await fx.AttemptsAsync(delivery.Id);
        Assert.Equal([t0, t0.AddMinutes(5), t0.AddMinutes(35), t0.AddMinutes(155)], attempts.Select(a => a.AttemptedAt));
        Assert.All(attempts, a => Assert.Equal(500, a.StatusCode));
        Assert.All(attempts, a => Assert.Equal("down for maintenance", a.ResponseBody));
        Assert.Equal(["initial", "retry", "retry", "retry"], attempts.Select(a => a.Trigger));
        // One message, one id: the receiver can dedupe retries on webhook-id.
        Assert.Single(receiver.At("/down").Select(r => r.Header("webhook-id")).Distinct());
        Assert.Equal(delivery.Id.ToString(), receiver.At("/down")[0].Header("webhook-id"));

        // The activity log over HTTP: newest first, filterable by status, one delivery with its attempts.
        using var owner = gym.Owner();
        var list = await (await owner.GetAsync($"/api/gym/webhooks/{hook.Id}/deliveries?status=undeliverable")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(delivery.Id, list.GetProperty("deliveries")[0].GetProperty("id").GetGuid());
        var none = await (await owner.GetAsync($"/api/gym/webhooks/{hook.Id}/deliveries?status=delivered")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Empty(none.GetProperty("deliveries").EnumerateArray());
        await (await owner.GetAsync($"/api/gym/webhooks/{hook.Id}/deliveries?status=bogus")).AssertErrorAsync(HttpStatusCode.BadRequest);
        var detail = await (await owner.GetAsync($"/api/gym/webhooks/{hook.Id}/deliveries/{delivery.Id}")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(4, detail.GetProperty("attempts").GetArrayLength());
        Assert.Equal(500, detail.GetProperty("attempts")[0].GetProperty("status_code").GetInt32());
        Assert.Equal("text/plain", detail.GetProperty("attempts")[0].GetProperty("response_headers").GetProperty("content-type").GetString());
        Assert.Equal("member.joined", detail.GetProperty("payload").GetProperty("event").GetString());
    }

    [Fact]
    public async Task Retry_after_from_the_receiver_sets_the_next_attempt_within_bounds()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/busy", new Reply(503) { RetryAfter = "600" });
        receiver.On("/eager", new Reply(429) { RetryAfter = "1" });
        var gym = await fx.CreateGymAsync();
        var busy = await gym.CreateWebhookAsync(receiver.Url("/busy"), "member.joined");
        var eager = await gym.CreateWebhookAsync(receiver.Url("/eager"), "member.joined");
        var t0 = fx.Clock.GetUtcNow().UtcDateTime;
        await gym.AddMemberAsync("user_busy");

        var d1 = await fx.WaitForDeliveryAsync(busy.Id, d => d.AttemptCount == 1, "busy attempt");
        Assert.Equal(t0 + TimeSpan.FromMinutes(10), d1.NextAttemptAt);
        var d2 = await fx.WaitForDeliveryAsync(eager.Id, d => d.AttemptCount == 1, "eager attempt");
        Assert.Equal(t0 + TimeSpan.FromMinutes(1), d2.NextAttemptAt); // clamped to Webhooks:MinRetryAfter
    }

    [Fact]
    public async Task Redirects_are_failures_and_are_not_followed()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/moved", new Reply(302, "") { Location = "/elsewhere" });
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/moved"), "member.joined");
        await gym.AddMemberAsync("user_moved");

        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.AttemptCount == 1, "attempt");
        Assert.Equal(DeliveryStatus.Retrying, delivery.Status);
        var attempt = Assert.Single(await fx.AttemptsAsync(delivery.Id));
        Assert.Equal(302, attempt.StatusCode);
        Assert.Contains("Redirects are not followed", attempt.Error, StringComparison.Ordinal);
        Assert.Contains("/elsewhere", attempt.ResponseHeaders, StringComparison.Ordinal);
        Assert.Empty(receiver.At("/elsewhere"));
    }

    [Fact]
    public async Task Gone_deactivates_the_subscription_and_the_owner_sees_why()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/gone", new Reply(410, "gone"));
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/gone"), "member.joined");
        await gym.AddMemberAsync("user_gone1");

        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Undeliverable, "undeliverable");
        Assert.Equal(410, delivery.LastStatusCode);
        using var owner = gym.Owner();
        var list = await (await owner.GetAsync("/api/gym/webhooks")).AssertStatusAsync(HttpStatusCode.OK);
        var webhook = list.GetProperty("webhooks")[0];
        Assert.False(webhook.GetProperty("is_active").GetBoolean());
        Assert.Contains("410", webhook.GetProperty("disabled_reason").GetString(), StringComparison.Ordinal);

        // Inactive subscriptions get nothing new.
        await gym.AddMemberAsync("user_gone2");
        await Eventually.TrueAsync(() => fx.WithDbAsync(db => db.OutboxEvents.AllAsync(e => e.GymId != gym.GymId || e.DispatchedAt != null)), what: "dispatched");
        Assert.Single(await fx.DeliveriesAsync(hook.Id));
        Assert.Single(receiver.At("/gone"));

        // Reactivating clears the reason.
        var patched = await (await owner.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { is_active = true })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.True(patched.GetProperty("is_active").GetBoolean());
        Assert.Equal(JsonValueKind.Null, patched.GetProperty("disabled_reason").ValueKind);
    }

    [Fact]
    public async Task Timeouts_and_refused_connections_are_failed_attempts()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/hang", new Reply { Hang = true });
        var closedPort = TestPorts.Closed();
        var gym = await fx.CreateGymAsync();
        var slow = await gym.CreateWebhookAsync(receiver.Url("/hang"), "member.joined");
        var refused = await gym.CreateWebhookAsync($"http://127.0.0.1:{closedPort}/hook", "member.joined");
        await gym.AddMemberAsync("user_timeout");

        var timedOut = await fx.WaitForDeliveryAsync(slow.Id, d => d.AttemptCount == 1, "timed-out attempt");
        Assert.Equal(DeliveryStatus.Retrying, timedOut.Status);
        var attempt = Assert.Single(await fx.AttemptsAsync(timedOut.Id));
        Assert.Null(attempt.StatusCode);
        Assert.Equal("Timed out after 2 s", attempt.Error);
        Assert.InRange(attempt.DurationMs, 1500, 15000);

        var failed = await fx.WaitForDeliveryAsync(refused.Id, d => d.AttemptCount == 1, "refused attempt");
        Assert.Equal(DeliveryStatus.Retrying, failed.Status);
        Assert.Equal("Connection refused", failed.LastError);
    }

    [Fact]
    public async Task A_binary_response_is_stored_as_at_most_64_KiB_of_UTF8()
    {
        // NUL bytes are not storable text: each becomes U+FFFD, three bytes of UTF-8, so 64 KiB read would be 192 KiB stored.
        var attempt = await DeliveredAttemptAsync(new Reply { StreamBytes = 1L << 20, StreamFill = 0 });
        Assert.Equal(64 * 1024 / 3, attempt.ResponseBody!.Length);
        Assert.All(attempt.ResponseBody, c => Assert.Equal('\uFFFD', c));
        Assert.True(attempt.ResponseBodyTruncated);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_text_response_of_64_KiB_is_stored_whole_and_one_byte_more_is_cut_at_a_character(bool overLimit)
    {
        // 32,768 two-byte characters are exactly 64 KiB. 65,535 ASCII ones and a two-byte one are a byte over: the
        // limit cuts the last character in two, and its first byte alone must not be stored (not even as U+FFFD).
        var body = overLimit ? new string('a', 64 * 1024 - 1) + "\u00e9" : new string('\u00e9', 32 * 1024);
        var attempt = await DeliveredAttemptAsync(new Reply(200, body));
        Assert.Equal(overLimit ? body[..^1] : body, attempt.ResponseBody);
        Assert.Equal(overLimit, attempt.ResponseBodyTruncated);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(100)]
    [InlineData(64 * 1024 - 1)]
    public async Task A_response_that_states_its_length_is_stored_whole(int bytes)
    {
        // Content-Length below the limit: the excerpt's buffer is sized to it, so exactly that much must come back.
        var attempt = await DeliveredAttemptAsync(new Reply { StreamBytes = bytes });
        Assert.Equal(new string('x', bytes), attempt.ResponseBody);
        Assert.False(attempt.ResponseBodyTruncated);
    }

    /// <summary>The one attempt of a member.joined delivery to a receiver answering <paramref name="reply"/>, once delivered.</summary>
    private async Task<WebhookAttempt> DeliveredAttemptAsync(Reply reply)
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/reply", reply);
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/reply"), "member.joined");
        await gym.AddMemberAsync("user_reply");
        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");
        return Assert.Single(await fx.AttemptsAsync(delivery.Id));
    }

    [Theory]
    [InlineData("abc", 3, 3)]
    [InlineData("abc", 2, 2)]
    [InlineData("a\u00e9", 2, 1)] // é is two bytes
    [InlineData("a\u00e9", 3, 2)]
    [InlineData("ab\U0001F600", 5, 2)] // an emoji is four bytes in a surrogate pair, never split
    [InlineData("ab\U0001F600", 6, 4)]
    [InlineData("\uFFFD\uFFFD", 5, 1)]
    public void An_excerpt_is_cut_at_a_whole_character(string text, int maxBytes, int chars) =>
        Assert.Equal(chars, Attempt.FitUtf8(text, maxBytes));

    [Fact]
    public async Task A_1_GiB_response_is_cut_off_at_64_KiB()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/huge", new Reply { StreamBytes = 1L << 30 });
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/huge"), "member.joined");
        await gym.AddMemberAsync("user_huge");

        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");
        var attempt = Assert.Single(await fx.AttemptsAsync(delivery.Id));
        Assert.Equal(200, attempt.StatusCode);
        Assert.Equal(64 * 1024, attempt.ResponseBody!.Length);
        Assert.True(attempt.ResponseBodyTruncated);
        Assert.Contains("1073741824", attempt.ResponseHeaders, StringComparison.Ordinal);
        // Gymwire hung up after the excerpt: the receiver stopped long before the end of the gigabyte.
        await Eventually.TrueAsync(() => Task.FromResult(receiver.StreamsEnded == 1), what: "the receiver's stream to end");
        Assert.True(receiver.BytesStreamed < 64L * 1024 * 1024, $"the receiver streamed {receiver.BytesStreamed} bytes");
    }

    [Fact]
    public async Task Test_send_delivers_a_sample_event_and_redeliver_resends_it_under_the_same_id()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/test"), "payment.successful");
        using var owner = gym.Owner();

        var sent = await (await owner.PostJsonAsync($"/api/gym/webhooks/{hook.Id}/test", new { @event = "payment.successful" })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("delivered", sent.GetProperty("status").GetString());
        Assert.True(sent.GetProperty("is_test").GetBoolean());
        Assert.Equal(200, sent.GetProperty("attempts")[0].GetProperty("status_code").GetInt32());
        Assert.Equal("test", sent.GetProperty("attempts")[0].GetProperty("trigger").GetString());
        var request = Assert.Single(receiver.At("/test"));
        AssertSigned(request, hook.Secret);
        var body = request.Json();
        Assert.Equal("payment.successful", body.GetProperty("event").GetString());
        Assert.Equal(9900, body.GetProperty("data").GetProperty("amount_cents").GetInt32());
        Assert.Equal(gym.GymId, body.GetProperty("gym_id").GetGuid());
        // Marked as a test, by header and by an additive last field; the documented fields are unchanged.
        Assert.Equal("true", request.Header("X-Gymwire-Test"));
        Assert.Equal(["id", "event", "gym_id", "data", "timestamp", "test"], body.EnumerateObject().Select(p => p.Name));
        Assert.True(body.GetProperty("test").GetBoolean());

        // Without a body, the first subscribed event is used.
        var implicitEvent = await (await owner.PostAsync($"/api/gym/webhooks/{hook.Id}/test", null)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("payment.successful", implicitEvent.GetProperty("event").GetString());
        await (await owner.PostJsonAsync($"/api/gym/webhooks/{hook.Id}/test", new { @event = "member.exploded" })).AssertErrorAsync(HttpStatusCode.BadRequest);

        var deliveryId = sent.GetProperty("id").GetGuid();
        await (await owner.PostAsync($"/api/gym/webhooks/{hook.Id}/deliveries/{deliveryId}/redeliver", null)).AssertStatusAsync(HttpStatusCode.Accepted);
        var again = await receiver.WaitForAsync("/test", 3);
        var redelivered = again.Last();
        Assert.Equal(request.Header("webhook-id"), redelivered.Header("webhook-id"));
        Assert.Equal(request.Body, redelivered.Body);
        Assert.Equal("true", redelivered.Header("X-Gymwire-Test"));
        AssertSigned(redelivered, hook.Secret);
        await Eventually.TrueAsync(async () =>
            (await (await owner.GetAsync($"/api/gym/webhooks/{hook.Id}/deliveries/{deliveryId}")).AssertStatusAsync(HttpStatusCode.OK))
                .GetProperty("attempts").GetArrayLength() == 2, what: "second attempt");
        var detail = await (await owner.GetAsync($"/api/gym/webhooks/{hook.Id}/deliveries/{deliveryId}")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("redeliver", detail.GetProperty("attempts")[1].GetProperty("trigger").GetString());
        Assert.Equal("delivered", detail.GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_failed_test_send_shows_the_answer_and_changes_nothing_about_the_webhook()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/broken", new Reply(500, "oops"));
        receiver.On("/gone", new Reply(410, "gone"));
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var logStart = fx.Logs.Lines.Count;
        foreach (var (path, status) in new[] { ("/broken", 500), ("/gone", 410) })
        {
            var hook = await gym.CreateWebhookAsync(receiver.Url(path), "payment.successful");
            var sent = await (await owner.PostAsync($"/api/gym/webhooks/{hook.Id}/test", null)).AssertStatusAsync(HttpStatusCode.OK);
            Assert.Equal("undeliverable", sent.GetProperty("status").GetString());
            Assert.Equal(status, sent.GetProperty("attempts")[0].GetProperty("status_code").GetInt32());

            var webhook = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == hook.Id));
            Assert.True(webhook.IsActive, $"a test answered {status} switched the webhook off");
            Assert.Null(webhook.DisabledReason);
            Assert.Null(webhook.FailingSince);
            var listed = await (await owner.GetAsync($"/api/gym/webhooks/{hook.Id}")).AssertStatusAsync(HttpStatusCode.OK);
            Assert.True(listed.GetProperty("is_active").GetBoolean());
            // Nor does it count in the health panel's figures.
            Assert.Equal(0, await fx.WithDbAsync(db => db.DeliveryCounts.Where(c => c.SubscriptionId == hook.Id).SumAsync(c => c.Delivered + c.Retrying + c.Undeliverable + c.Pending)));
        }
        // The receiver's answer to a test is not the server's problem: nothing at Warning or above.
        Assert.DoesNotContain(fx.Logs.Lines.Skip(logStart), l => l.Contains("AttemptRecorder", StringComparison.Ordinal) && !l.StartsWith("Debug ", StringComparison.Ordinal)
            && !l.StartsWith("Information ", StringComparison.Ordinal) && !l.StartsWith("Trace ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Rotated_secret_signs_alongside_the_old_one_for_the_overlap()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/rotate"), "member.joined");
        using var owner = gym.Owner();
        var rotated = await (await owner.PostAsync($"/api/gym/webhooks/{hook.Id}/rotate-secret", null)).AssertStatusAsync(HttpStatusCode.OK);
        var newSecret = rotated.GetProperty("secret").GetString()!;
        Assert.StartsWith("whsec_", newSecret, StringComparison.Ordinal);
        Assert.NotEqual(hook.Secret, newSecret);
        Assert.Equal(fx.Clock.GetUtcNow().UtcDateTime.AddHours(24), rotated.GetProperty("previous_secret_expires_at").GetDateTime().ToUniversalTime());

        await gym.AddMemberAsync("user_rot1");
        var during = (await receiver.WaitForAsync("/rotate", 1))[0];
        Assert.Equal(2, during.Header("webhook-signature").Split(' ').Length);
        Assert.True(StandardWebhooksVerifier.Verify(hook.Secret, during.Headers, during.Body, fx.Clock.GetUtcNow()));
        Assert.True(StandardWebhooksVerifier.Verify(newSecret, during.Headers, during.Body, fx.Clock.GetUtcNow()));
        Assert.True(StandardWebhooksVerifier.VerifyCombatScore(newSecret, during.Headers, during.Body));

        fx.Clock.Advance(TimeSpan.FromHours(24) + TimeSpan.FromSeconds(1));
        await gym.AddMemberAsync("user_rot2");
        var after = (await receiver.WaitForAsync("/rotate", 2))[1];
        Assert.Single(after.Header("webhook-signature").Split(' '));
        Assert.False(StandardWebhooksVerifier.Verify(hook.Secret, after.Headers, after.Body, fx.Clock.GetUtcNow()));
        AssertSigned(after, newSecret);
    }

    [Fact]
    public async Task An_endpoint_failing_5_times_in_a_row_is_paused_probed_with_doubling_pauses_and_resumed_by_a_success()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var down = 1;
        receiver.On("/down", _ => Volatile.Read(ref down) == 1 ? new Reply(503) : new Reply());
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/down"), "member.joined");
        // A second webhook gets every event too: once it has one, the worker has claimed that event's deliveries,
        // and the failing endpoint's was left out only if it is paused.
        await gym.CreateWebhookAsync(receiver.Url("/witness"), "member.joined");
        async Task EventAsync(int n)
        {
            await gym.AddMemberAsync($"user_paused_{n}");
            await receiver.WaitForAsync("/witness", n);
        }
        for (var n = 1; n <= 5; n++)
        {
            await EventAsync(n);
            await receiver.WaitForAsync("/down", n);
        }
        // The pause is the subscription's stored health.
        Task<(DateTime? PausedUntil, int Failures)> HealthAsync() => fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking()
            .Where(s => s.Id == hook.Id).Select(s => new ValueTuple<DateTime?, int>(s.PausedUntil, s.ConsecutiveFailures)).SingleAsync());
        await Eventually.TrueAsync(async () => (await HealthAsync()).PausedUntil is not null, what: "the endpoint to be paused");

        // Paused for 1 s: a new event is not attempted until the clock gets there, then one probe goes.
        await EventAsync(6);
        Assert.Equal(5, receiver.At("/down").Count);
        fx.AdvanceAndWake(TimeSpan.FromSeconds(1));
        await receiver.WaitForAsync("/down", 6);
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id)).Count(d => d.Status == DeliveryStatus.Retrying) == 6, what: "the probe recorded");

        // The probe failed: the pause doubles to 2 s, so a second later the endpoint is still paused.
        fx.AdvanceAndWake(TimeSpan.FromSeconds(1));
        await EventAsync(7);
        Assert.Equal(6, receiver.At("/down").Count);
        Interlocked.Exchange(ref down, 0);
        fx.AdvanceAndWake(TimeSpan.FromSeconds(2));
        await receiver.WaitForAsync("/down", 7);
        await Eventually.TrueAsync(async () => await HealthAsync() == (null, 0), what: "the endpoint to resume");

        // Resumed: the next event goes at once, and the failed ones at their scheduled retry, all delivered.
        await EventAsync(8);
        await receiver.WaitForAsync("/down", 8);
        fx.AdvanceAndWake(TimeSpan.FromMinutes(6));
        await fx.WaitForDeliveriesAsync(hook.Id, 8, d => d.Status == DeliveryStatus.Delivered, "every delivery delivered");
        Assert.Equal(14, receiver.At("/down").Count); // 5 + the failed probe + 2 at once + 6 retries
        AssertNoWorkerErrors();
    }

    [Fact]
    public async Task Deliveries_with_no_body_to_send_end_at_once_and_neither_pause_a_healthy_endpoint_nor_hold_up_its_probe()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/no-body"), "member.joined");
        var threshold = fx.Services.GetRequiredService<IOptions<WebhookOptions>>().Value.FailingEndpointThreshold;
        var logged = fx.Logs.Lines.Count;
        // Deliveries whose outbox event was deleted by hand: their body is built from it, so there is nothing to send.
        async Task<List<Guid>> OrphansAsync(int count, DateTime due, WebhookDelivery? with = null) => await fx.WithDbAsync(async db =>
        {
            var orphans = Enumerable.Range(0, count).Select(_ => new WebhookDelivery
            {
                Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = hook.Id, EventId = Guid.NewGuid(), Event = "member.joined",
                Status = DeliveryStatus.Pending, CreatedAt = due, NextAttemptAt = due,
            }).ToList();
            db.WebhookDeliveries.AddRange(orphans);
            if (with is not null)
            {
                db.WebhookDeliveries.Add(with);
            }
            await db.SaveChangesAsync();
            return orphans.Select(o => o.Id).ToList();
        });
        Task<(int Failures, DateTime? PausedUntil, DateTime? ProbeClaimedUntil, DateTime? FailingSince)> HealthAsync() => fx.WithDbAsync(db => db.WebhookSubscriptions
            .AsNoTracking().Where(s => s.Id == hook.Id)
            .Select(s => new ValueTuple<int, DateTime?, DateTime?, DateTime?>(s.ConsecutiveFailures, s.PausedUntil, s.ProbeClaimedUntil, s.FailingSince)).SingleAsync());
        async Task EndedAsync(List<Guid> ids, string what)
        {
            await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id)).Count(d => ids.Contains(d.Id) && d.Status == DeliveryStatus.Undeliverable) == ids.Count, what: what);
            Assert.All((await fx.DeliveriesAsync(hook.Id)).Where(d => ids.Contains(d.Id)), d =>
            {
                Assert.Equal((1, (int?)null), (d.AttemptCount, d.LastStatusCode));
                Assert.Contains("no body to send", d.LastError);
            });
        }

        // More than the failures that pause an endpoint: each ends at its one attempt, and the endpoint stays healthy.
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var first = await OrphansAsync(threshold + 1, now);
        fx.WakeWorker();
        await EndedAsync(first, "the orphans to end");
        Assert.Equal((0, (DateTime?)null, (DateTime?)null, (DateTime?)null), await HealthAsync());
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_after_orphans"));
        await receiver.WaitForAsync("/no-body", 1);
        await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "the new member's delivery recorded");

        // Failing, its pause over: its next attempt is a probe, and the oldest due delivery, one with no body, is it; the
        // other, claimed with it, waits for the probe's outcome. The probe is given up at once, so the other goes now
        // as the next probe, not at the first one's lease end.
        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook.Id).ExecuteUpdateAsync(u => u
            .SetProperty(s => s.ConsecutiveFailures, threshold).SetProperty(s => s.PauseLength, TimeSpan.FromMinutes(1))
            .SetProperty(s => s.PausedUntil, now.AddMinutes(-1)).SetProperty(s => s.FailingSince, now.AddMinutes(-5))));
        var waiting = new WebhookDelivery
        {
            Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = hook.Id, EventId = Guid.NewGuid(), Event = "member.joined",
            Payload = WebhookPayloads.Build(Guid.NewGuid(), "member.joined", gym.GymId, """{"user_id":"user_behind_probe"}""", now),
            Status = DeliveryStatus.Pending, CreatedAt = now, NextAttemptAt = now,
        };
        var probe = await OrphansAsync(1, now.AddSeconds(-1), waiting);
        // A real clock's time has 100 ns ticks, of which PostgreSQL keeps whole microseconds: the probe's end must still
        // be recognised as the one stored.
        fx.Clock.Advance(TimeSpan.FromTicks(3));
        try
        {
            fx.WakeWorker();
            await EndedAsync(probe, "the probe with no body to end");
            Assert.Equal("user_behind_probe", (await receiver.WaitForAsync("/no-body", 2))[1].Json().GetProperty("data").GetProperty("user_id").GetString());
            await Eventually.TrueAsync(async () => await HealthAsync() == (0, null, null, null), what: "the endpoint to resume on the next probe's success");
        }
        finally
        {
            // A whole second again: the class's other tests compare times the API gives in whole milliseconds.
            fx.Clock.Advance(TimeSpan.FromTicks(TimeSpan.TicksPerSecond - fx.Clock.GetUtcNow().Ticks % TimeSpan.TicksPerSecond));
        }
        Assert.Equal(2, receiver.At("/no-body").Count);
        fx.Logs.AssertNoErrorsSince(logged);
    }

    [Fact]
    public async Task A_delivery_with_no_body_to_send_leaves_a_slow_endpoint_at_one_attempt_at_a_time()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var answer = new TaskCompletionSource();
        // The first attempt hangs until the 2 s timeout (slow: one attempt in flight at a time from then on); the next
        // ones wait for the test.
        receiver.On("/slow-no-body", n => n == 1 ? new Reply { Hang = true } : new Reply { Gate = answer.Task });
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/slow-no-body"), "member.joined");
        DateTime Now() => fx.Clock.GetUtcNow().UtcDateTime;
        await gym.AddMemberAsync("user_slow_no_body_1");
        await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Retrying, "the first attempt to time out");

        // A delivery whose outbox event was deleted by hand: it ends at its attempt, which sent nothing and so measured
        // nothing of the endpoint's speed.
        var orphan = Guid.CreateVersion7();
        await fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.Add(new WebhookDelivery
            {
                Id = orphan, GymId = gym.GymId, SubscriptionId = hook.Id, EventId = Guid.NewGuid(), Event = "member.joined",
                Status = DeliveryStatus.Pending, CreatedAt = Now(), NextAttemptAt = Now(),
            });
            return await db.SaveChangesAsync();
        });
        fx.WakeWorker();
        await fx.WaitForDeliveryAsync(hook.Id, d => d.Id == orphan && d.Status == DeliveryStatus.Undeliverable, "the delivery with no body to end");

        // Two events fanned out together: the endpoint is still slow, so one goes and the other waits behind it.
        await fx.WithDbAsync(async db =>
        {
            foreach (var n in Enumerable.Range(2, 2))
            {
                db.AddEvent(gym.GymId, EventCatalog.MemberJoined, new { user_id = $"user_slow_no_body_{n}" }, Now());
            }
            return await db.SaveChangesAsync();
        });
        await receiver.WaitForAsync("/slow-no-body", 2);
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id))
            .Count(d => d.Status == DeliveryStatus.Pending && d.LockedUntil == null && d.NextAttemptAt <= Now()) == 1, what: "one delivery to wait behind the attempt");
        await Eventually.TrueAsync(() => Task.FromResult(receiver.Active("/slow-no-body") == 1), what: "only the second attempt open at the receiver");
        answer.SetResult();
        await receiver.WaitForAsync("/slow-no-body", 3);
        Assert.Equal(1, receiver.MaxConcurrentHeld("/slow-no-body"));

        // The first one, at its retry: everything but the delivery with no body delivered.
        fx.AdvanceAndWake(TimeSpan.FromMinutes(6));
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id)).Count(d => d.Status == DeliveryStatus.Delivered) == 3, what: "the three events delivered");
        AssertNoWorkerErrors();
    }

    [Fact]
    public async Task A_paused_endpoints_queued_deliveries_wait_for_its_probes_and_are_delivered_when_it_answers()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var (down, armed) = (1, 0);
        var probe = new TaskCompletionSource();
        receiver.On("/held", _ => Volatile.Read(ref down) == 0 ? new Reply() : new Reply(503) { Gate = Volatile.Read(ref armed) == 1 ? probe.Task : null });
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/held"), "member.joined");
        var events = 0;
        await gym.CreateWebhookAsync(receiver.Url("/held-witness"), "member.joined");
        async Task EventAsync()
        {
            await gym.AddMemberAsync($"user_held_{++events}");
            await receiver.WaitForAsync("/held-witness", events);
        }
        // The clock stands still unless the test moves it, so every time below is exact.
        DateTime Now() => fx.Clock.GetUtcNow().UtcDateTime;
        var policy = fx.Services.GetRequiredService<EndpointPolicy>();
        // The pause is the subscription's stored health, which every node's claim reads.
        Task<DateTime?> PausedUntilAsync() => fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().Where(s => s.Id == hook.Id).Select(s => s.PausedUntil).SingleAsync());
        Task<DateTime?> ProbeClaimedUntilAsync() => fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().Where(s => s.Id == hook.Id).Select(s => s.ProbeClaimedUntil).SingleAsync());
        // Waiting: queued, unclaimed, and due now or, while the endpoint is paused or probed, at the pause's or the probe's end.
        async Task QueuedAsync(string what, int count) =>
            await Eventually.TrueAsync(async () =>
            {
                var by = new[] { Now(), await PausedUntilAsync() ?? Now(), await ProbeClaimedUntilAsync() ?? Now() }.Max();
                return (await fx.DeliveriesAsync(hook.Id))
                    .Count(d => d.Status is DeliveryStatus.Pending or DeliveryStatus.Retrying && d.LockedUntil == null && d.NextAttemptAt <= by) == count;
            }, what: what);

        // Four failures, retried in 5 minutes; half a second before that, a fifth pauses the endpoint for 1 s.
        for (var n = 1; n <= 4; n++)
        {
            await EventAsync();
            await receiver.WaitForAsync("/held", n);
        }
        var retryAt = Now() + TimeSpan.FromMinutes(5);
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id)).Count(d => d.Status == DeliveryStatus.Retrying && d.NextAttemptAt == retryAt) == 4,
            what: "four retries");
        fx.AdvanceAndWake(TimeSpan.FromMinutes(5) - TimeSpan.FromMilliseconds(500));
        await EventAsync();
        await receiver.WaitForAsync("/held", 5);
        // The pause is the subscription's stored health.
        Task<(DateTime? PausedUntil, int Failures)> HealthAsync() => fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking()
            .Where(s => s.Id == hook.Id).Select(s => new ValueTuple<DateTime?, int>(s.PausedUntil, s.ConsecutiveFailures)).SingleAsync());
        await Eventually.TrueAsync(async () => (await HealthAsync()).PausedUntil is not null, what: "the endpoint to be paused");
        await Eventually.TrueAsync(async () => await PausedUntilAsync() == Now() + TimeSpan.FromSeconds(1), what: "a pause of 1 s");
        // The node that recorded it wakes when it ends (the worker observes the outcome after the recorder stores it).
        await Eventually.TrueAsync(() => Task.FromResult(policy.NextProbeAt() == Now() + TimeSpan.FromSeconds(1)), what: "the worker to wake at the pause's end");

        // The four retries would come due inside the pause, and an event arrives: they wait in the queue, unsent and
        // unfailed, due at the pause's end (out of the way of every claim meanwhile).
        fx.AdvanceAndWake(TimeSpan.FromMilliseconds(500));
        await EventAsync();
        await QueuedAsync("the retries and the new delivery to wait", 5);
        Assert.Equal(5, receiver.At("/held").Count);
        var pauseEnd = await PausedUntilAsync();
        Assert.True(pauseEnd > Now());
        Assert.Equal(5, (await fx.DeliveriesAsync(hook.Id)).Count(d => d.NextAttemptAt == pauseEnd));

        // The pause ends and one probe goes; while it is out, the others wait. It fails: the pause doubles to 2 s.
        Interlocked.Exchange(ref armed, 1);
        fx.AdvanceAndWake(TimeSpan.FromMilliseconds(500));
        await receiver.WaitForAsync("/held", 6);
        Interlocked.Exchange(ref armed, 0);
        fx.WakeWorker();
        await QueuedAsync("the others to wait while the probe is out", 4);
        Assert.Equal(1, receiver.Active("/held"));
        var probeEnd = await ProbeClaimedUntilAsync();
        Assert.True(probeEnd > Now());
        Assert.Equal(4, (await fx.DeliveriesAsync(hook.Id)).Count(d => d.NextAttemptAt == probeEnd && d.LockedUntil == null));
        probe.SetResult();
        await Eventually.TrueAsync(async () => await PausedUntilAsync() == Now() + TimeSpan.FromSeconds(2), what: "the pause doubled to 2 s");
        Assert.Equal(6, receiver.At("/held").Count);

        // The next probe fails too, and the pause doubles again.
        fx.AdvanceAndWake(TimeSpan.FromSeconds(2));
        await receiver.WaitForAsync("/held", 7);
        await Eventually.TrueAsync(async () => await PausedUntilAsync() == Now() + TimeSpan.FromSeconds(4), what: "the pause doubled to 4 s");
        await QueuedAsync("three to wait for the next probe", 3);

        // The endpoint is back: the probe at the end of the pause succeeds, and the two still due go at once, and so
        // does a new event.
        Interlocked.Exchange(ref down, 0);
        fx.AdvanceAndWake(TimeSpan.FromSeconds(4));
        await receiver.WaitForAsync("/held", 10);
        await Eventually.TrueAsync(async () => await PausedUntilAsync() is null, what: "the pause ended by the probe's success");
        Assert.Null(policy.NextProbeAt());
        await EventAsync();
        await receiver.WaitForAsync("/held", 11);

        // The fifth event's and the two failed probes' deliveries at their scheduled retries (5 or 30 minutes, by their
        // attempts): everything delivered.
        fx.AdvanceAndWake(TimeSpan.FromMinutes(31));
        await fx.WaitForDeliveriesAsync(hook.Id, 7, d => d.Status == DeliveryStatus.Delivered, "every delivery delivered");
        Assert.Equal(7, receiver.At("/held").Select(r => r.Header("webhook-id")).Distinct().Count());
        AssertNoWorkerErrors();
    }

    [Fact]
    public async Task Retention_deletes_finished_deliveries_and_test_sends_and_their_attempts_past_the_retention_period_only()
    {
        var gym = await fx.CreateGymAsync();
        var first = await gym.CreateWebhookAsync("http://127.0.0.1:9/retention-a", "member.joined");
        var second = await gym.CreateWebhookAsync("http://127.0.0.1:9/retention-b", "member.joined");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var retention = fx.Services.GetRequiredService<IOptions<WebhookOptions>>().Value.DeliveryRetention;
        var (old, recent) = (now - retention - TimeSpan.FromHours(1), now - retention + TimeSpan.FromHours(1));
        var expected = new Dictionary<Guid, bool>(); // delivery id -> kept
        await fx.WithDbAsync(async db =>
        {
            WebhookDelivery Add(Guid hook, DateTime created, string status, bool kept, bool test = false)
            {
                var d = new WebhookDelivery
                {
                    Id = Guid.CreateVersion7(created), GymId = gym.GymId, SubscriptionId = hook, Event = "member.joined", Payload = "{}",
                    Status = status, CreatedAt = created, AttemptCount = 1, LastAttemptAt = created, IsTest = test,
                    NextAttemptAt = status == DeliveryStatus.Retrying ? now + TimeSpan.FromDays(1) : null,
                };
                db.WebhookDeliveries.Add(d);
                db.WebhookAttempts.Add(new WebhookAttempt { Id = Guid.CreateVersion7(created), GymId = gym.GymId, DeliveryId = d.Id, Number = 1, AttemptedAt = created, StatusCode = 200, Trigger = "initial" });
                expected[d.Id] = kept;
                return d;
            }
            // More than one batch (1,000) of the first webhook's old deliveries.
            for (var i = 0; i < 1_005; i++)
            {
                Add(first.Id, old - TimeSpan.FromSeconds(i), DeliveryStatus.Delivered, kept: false);
            }
            foreach (var hook in new[] { first.Id, second.Id })
            {
                Add(hook, old, DeliveryStatus.Undeliverable, kept: false);
                Add(hook, old, DeliveryStatus.Retrying, kept: true); // not finished: kept whatever its age
                // A test send is never due: one left pending (its server stopped before recording it) goes at retention too.
                Add(hook, old, DeliveryStatus.Pending, kept: false, test: true);
                Add(hook, recent, DeliveryStatus.Pending, kept: true, test: true);
                Add(hook, recent, DeliveryStatus.Delivered, kept: true);
                Add(hook, recent, DeliveryStatus.Undeliverable, kept: true);
            }
            return await db.SaveChangesAsync();
        });

        var purged = await fx.Services.GetServices<IHostedService>().OfType<WebhookRetention>().Single().PurgeAsync(CancellationToken.None);

        Assert.True(purged >= expected.Count(e => !e.Value), $"{purged} deliveries purged");
        var left = await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.GymId == gym.GymId).Select(d => d.Id).ToListAsync());
        Assert.Equal(expected.Where(e => e.Value).Select(e => e.Key).Order(), left.Order());
        var attempts = await fx.WithDbAsync(db => db.WebhookAttempts.Where(a => a.GymId == gym.GymId).Select(a => a.DeliveryId).ToListAsync());
        Assert.Equal(left.Order(), attempts.Order());
    }

    [Fact]
    public async Task A_claim_left_by_a_crashed_worker_is_delivered_when_its_lease_expires()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/crash"), "member.joined");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var id = Guid.CreateVersion7();
        await fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.Add(new WebhookDelivery
            {
                Id = id, GymId = gym.GymId, SubscriptionId = hook.Id, EventId = Guid.NewGuid(), Event = "member.joined",
                Payload = WebhookPayloads.Build(Guid.NewGuid(), "member.joined", gym.GymId, """{"user_id":"user_crash"}""", now),
                Status = DeliveryStatus.Pending, CreatedAt = now, NextAttemptAt = now,
                LockedUntil = now.AddMinutes(1), // a worker that died mid-attempt
            });
            return await db.SaveChangesAsync();
        });
        fx.AdvanceAndWake(TimeSpan.FromMinutes(2));
        var request = (await receiver.WaitForAsync("/crash", 1))[0];
        Assert.Equal(id.ToString(), request.Header("webhook-id"));
        await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");
    }

    [Fact]
    public async Task A_slow_endpoint_does_not_starve_the_others()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var release = new TaskCompletionSource();
        receiver.On("/slow", new Reply { Gate = release.Task });
        var gym = await fx.CreateGymAsync();
        var slow = await gym.CreateWebhookAsync(receiver.Url("/slow"), "member.joined");
        var fast = await gym.CreateWebhookAsync(receiver.Url("/fast"), "member.joined");
        await fx.WithDbAsync(async db =>
        {
            var now = fx.Clock.GetUtcNow().UtcDateTime;
            foreach (var i in Enumerable.Range(1, 20))
            {
                db.AddEvent(gym.GymId, EventCatalog.MemberJoined, new { user_id = $"user_{i}" }, now);
            }
            return await db.SaveChangesAsync();
        });
        try
        {
            await receiver.WaitForAsync("/fast", 20);
            Assert.InRange(receiver.MaxConcurrent("/slow"), 1, 8); // Webhooks:MaxConcurrentPerEndpoint
        }
        finally
        {
            release.SetResult();
        }
        // Slow attempts that hit the 2 s timeout meanwhile are retried after 5 minutes: move the clock along.
        await Eventually.TrueAsync(async () =>
        {
            fx.AdvanceAndWake(TimeSpan.FromMinutes(5));
            return (await fx.DeliveriesAsync(slow.Id)).Count(d => d.Status == DeliveryStatus.Delivered) == 20;
        }, what: "slow endpoint catches up");
        Assert.InRange(receiver.MaxConcurrent("/slow"), 1, 8);
        Assert.Equal(20, (await fx.DeliveriesAsync(fast.Id)).Count(d => d.Status == DeliveryStatus.Delivered));
    }

    [Fact]
    public async Task A_slow_endpoints_queued_deliveries_wait_behind_its_one_attempt_and_go_one_at_a_time()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var quick = new TaskCompletionSource();
        // The first two attempts hang until the 2 s timeout (slow: one attempt in flight at a time from then on); the
        // third waits for the test and then answers at once.
        receiver.On("/slowq", n => n <= 2 ? new Reply { Hang = true } : new Reply { Gate = n == 3 ? quick.Task : null });
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/slowq"), "member.joined");
        DateTime Now() => fx.Clock.GetUtcNow().UtcDateTime;
        // Waiting: due, unclaimed and never attempted.
        async Task WaitingAsync(string what, int count) =>
            await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id))
                .Count(d => d.Status == DeliveryStatus.Pending && d.LockedUntil == null && d.NextAttemptAt <= Now()) == count, what: what);

        await gym.AddMemberAsync("user_slowq_1");
        await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Retrying, "the first attempt to time out");
        // Four more events, fanned out together: the second attempt starts, and the three behind it wait.
        await fx.WithDbAsync(async db =>
        {
            foreach (var n in Enumerable.Range(2, 4))
            {
                db.AddEvent(gym.GymId, EventCatalog.MemberJoined, new { user_id = $"user_slowq_{n}" }, Now());
            }
            return await db.SaveChangesAsync();
        });
        await receiver.WaitForAsync("/slowq", 2);
        await WaitingAsync("the deliveries behind the slow attempt to wait", 3);
        // It times out (slow again): the next one goes, the other two wait.
        await receiver.WaitForAsync("/slowq", 3);
        await WaitingAsync("one delivery to go for the next attempt", 2);
        // One open: the receiver sees the timed-out request end a moment after the sender has moved on, which
        // MaxConcurrent would count as an overlap and MaxConcurrentHeld does not.
        await Eventually.TrueAsync(() => Task.FromResult(receiver.Active("/slowq") == 1), what: "only the third attempt open at the receiver");
        Assert.Equal(1, receiver.MaxConcurrentHeld("/slowq"));
        // That attempt is quick: the endpoint is no longer slow, and the two waiting go at once.
        quick.SetResult();
        await receiver.WaitForAsync("/slowq", 5);
        await WaitingAsync("none to wait", 0);
        await gym.AddMemberAsync("user_slowq_6");
        await receiver.WaitForAsync("/slowq", 6);

        // The two that timed out at their retry: everything delivered.
        fx.AdvanceAndWake(TimeSpan.FromMinutes(6));
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id)).All(d => d.Status == DeliveryStatus.Delivered), what: "every delivery delivered");
        Assert.Equal(6, receiver.At("/slowq").Skip(2).Select(r => r.Header("webhook-id")).Distinct().Count());
        AssertNoWorkerErrors();
    }

    [Fact]
    public async Task Finished_deliveries_are_deleted_after_the_retention_period()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/retention"), "member.joined");
        await gym.AddMemberAsync("user_old");
        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");
        Assert.Single(await fx.AttemptsAsync(delivery.Id));

        fx.Clock.Advance(TimeSpan.FromDays(31)); // the hourly retention pass runs on the clock
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id)).Count == 0, what: "purged");
        Assert.Empty(await fx.AttemptsAsync(delivery.Id));
    }

    [Fact]
    public async Task Concurrent_claimers_never_take_the_same_delivery()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/claims"), "member.joined");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var ids = Enumerable.Range(0, 40).Select(_ => Guid.CreateVersion7()).ToList();
        await fx.WithDbAsync(async db =>
        {
            foreach (var id in ids)
            {
                db.WebhookDeliveries.Add(new WebhookDelivery
                {
                    Id = id, GymId = gym.GymId, SubscriptionId = hook.Id, EventId = Guid.NewGuid(), Event = "member.joined",
                    Payload = WebhookPayloads.Build(Guid.NewGuid(), "member.joined", gym.GymId, "{}", now),
                    Status = DeliveryStatus.Pending, CreatedAt = now, NextAttemptAt = now,
                });
            }
            return await db.SaveChangesAsync();
        });
        // Four claimers at once, as four nodes would (the running worker may be a fifth).
        var queue = fx.Queue();
        var claims = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => queue.ClaimAsync(15, [], [], CancellationToken.None))));
        var claimed = claims.SelectMany(c => c).ToList();
        Assert.Equal(claimed.Count, claimed.Select(d => d.Id).Distinct().Count());

        await queue.ReleaseAsync(claimed, CancellationToken.None);
        fx.WakeWorker();
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id)).All(d => d.Status == DeliveryStatus.Delivered), what: "all delivered");
        Assert.Equal(40, receiver.At("/claims").Count);
        Assert.Equal(40, receiver.At("/claims").Select(r => r.Header("webhook-id")).Distinct().Count());
        AssertNoWorkerErrors();
    }

    private void AssertNoWorkerErrors() =>
        fx.Logs.AssertNoErrorsSince(category: "Gymwire.Features.Webhooks");

    [Fact]
    public async Task A_subscription_failing_for_five_days_is_deactivated()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/broken", new Reply(500));
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/broken"), "member.joined");
        await gym.AddMemberAsync("user_broken");
        await fx.WaitForDeliveryAsync(hook.Id, d => d.AttemptCount == 1, "first failure");

        fx.AdvanceAndWake(TimeSpan.FromDays(5));
        await Eventually.TrueAsync(async () => !(await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == hook.Id))).IsActive, what: "deactivated");
        using var owner = gym.Owner();
        var webhook = await (await owner.GetAsync($"/api/gym/webhooks/{hook.Id}")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.False(webhook.GetProperty("is_active").GetBoolean());
        Assert.Contains("failed since", webhook.GetProperty("disabled_reason").GetString(), StringComparison.Ordinal);
    }
}
