using System.Data.Common;
using System.Diagnostics.Metrics;
using System.Net;
using Gymwire.Data;
using Gymwire.Features.Dashboard.Integrations;
using Gymwire.Features.Sms;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace Gymwire.Tests.Sms;

/// <summary>
/// A server with a public address asks Twilio for status callbacks, and the stand-in posts them as Twilio does
/// (signed over the public URL, delivered through a trusted proxy that names the client's address). Rejected
/// callbacks are limited to <see cref="Limit"/> a minute per address.
/// </summary>
public abstract class TwilioCallbackFixture(Store store) : TwilioFixture(store)
{
    public const string PublicUrl = "https://gymwire.example/";
    public const string CallbackUrl = "https://gymwire.example/api/integrations/twilio/status";
    public const int Limit = 5;

    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        .. base.Settings(),
        new("Auth:PublicUrl", PublicUrl),
        new("RateLimiting:TwilioCallbacks:PermitLimit", Limit.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        new("ForwardedHeaders:TrustedProxies:0", "127.0.0.1"),
    ];
}

public sealed class SqliteTwilioCallbacks() : TwilioCallbackFixture(Store.Sqlite);

public sealed class PostgresTwilioCallbacks() : TwilioCallbackFixture(Store.Postgres);

public abstract class SmsStatusCallbackTests(TwilioCallbackFixture fx)
{
    public sealed class Sqlite(SqliteTwilioCallbacks f) : SmsStatusCallbackTests(f), IClassFixture<SqliteTwilioCallbacks>;
    public sealed class Postgres(PostgresTwilioCallbacks f) : SmsStatusCallbackTests(f), IClassFixture<PostgresTwilioCallbacks>;

    private const string CallbacksCategory = "Gymwire.Features.Sms.TwilioStatusCallbacks";

    /// <summary>A client address of its own per use, so that one test's rejected posts never count against another's.</summary>
    private static string NewAddress() => $"203.0.{Random.Shared.Next(0, 256)}.{Random.Shared.Next(1, 255)}";

    /// <summary>A number of its own, so that a test can tell its look-ups in Twilio's list from other tests'.</summary>
    private static string NewPhone() => "+1555" + Random.Shared.Next(1_000_000, 10_000_000).ToString(System.Globalization.CultureInfo.InvariantCulture);

    private Task<(TestGym Gym, HttpClient Writer)> GymAsync() => fx.GymWithWriterAsync();

    /// <summary>Queues a message and waits until the sender recorded it sent; returns it and Twilio's copy.</summary>
    private async Task<(Guid Id, TwilioMessage Twilio)> SentAsync(HttpClient writer, string? body = null, string phone = "+15551234567")
    {
        body ??= $"Status {Guid.NewGuid():N}";
        var sms = await (await writer.PostJsonAsync("/api/zapier/actions?type=send_sms", new { phone, message = body })).AssertStatusAsync(HttpStatusCode.Created);
        var id = sms.GetProperty("id").GetGuid();
        var sent = await AwaitAsync(id, m => m.Status is SmsStatuses.Sent or SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, sent.Status);
        return (id, Assert.Single(fx.Twilio.AcceptedWith(body)));
    }

    private Task<SmsMessage> AwaitAsync(Guid id, Func<SmsMessage, bool> done) => fx.AwaitSmsAsync(id, done);

    private Task<SmsMessage> MessageAsync(Guid id) => fx.SmsAsync(id);

    private async Task CallBackAsync(TwilioMessage message, string status, int? errorCode = null)
    {
        var response = await fx.Twilio.CallBackAsync(fx.BaseAddress, message, status, errorCode);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("", await response.Content.ReadAsStringAsync());
    }

    private async Task<string> DtoStatusAsync(HttpClient writer, Guid id)
    {
        var list = await (await writer.GetAsync("/api/gym/sms")).AssertStatusAsync(HttpStatusCode.OK);
        return list.GetProperty("messages").EnumerateArray().Single(m => m.GetProperty("id").GetGuid() == id).GetProperty("status").GetString()!;
    }

    private Task<IntegrationStatus> TileAsync(Guid gymId) => fx.SmsTileAsync(gymId);

    [Fact]
    public async Task A_delivered_callback_marks_the_message_delivered_and_later_interim_or_undelivered_callbacks_do_not_undo_it()
    {
        using var deliveries = new MetricCollector<long>(fx.Services.GetRequiredService<IMeterFactory>(), SmsMetrics.MeterName, "gymwire.sms.deliveries");
        var (_, writer) = await GymAsync();
        var (id, twilio) = await SentAsync(writer);
        Assert.Equal(TwilioCallbackFixture.CallbackUrl, twilio.StatusCallback);

        await CallBackAsync(twilio, "sent");
        Assert.Equal(SmsStatuses.Sent, (await MessageAsync(id)).Status);
        await CallBackAsync(twilio, "delivered");
        Assert.Equal(SmsStatuses.Delivered, (await MessageAsync(id)).Status);
        // Twilio repeats callbacks and they arrive out of order.
        await CallBackAsync(twilio, "delivered");
        await CallBackAsync(twilio, "sent");
        await CallBackAsync(twilio, "queued");
        await CallBackAsync(twilio, "undelivered", 30003);

        var delivered = await MessageAsync(id);
        Assert.Equal(SmsStatuses.Delivered, delivered.Status);
        Assert.Null(delivered.Error);
        Assert.Equal(twilio.Sid, delivered.ProviderMessageId);
        Assert.Equal(SmsStatuses.Delivered, await DtoStatusAsync(writer, id));
        var listed = await (await writer.GetAsync("/api/gym/sms?status=delivered")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(id, Assert.Single(listed.GetProperty("messages").EnumerateArray()).GetProperty("id").GetGuid());
        // Counted once, when the message changed, not per callback.
        Assert.Equal(1, deliveries.GetMeasurementSnapshot().Where(m => Equals(m.Tags.GetValueOrDefault("gymwire.outcome"), "delivered")).Sum(m => m.Value));
        Assert.Equal(0, deliveries.GetMeasurementSnapshot().Where(m => Equals(m.Tags.GetValueOrDefault("gymwire.outcome"), "undelivered")).Sum(m => m.Value));
    }

    [Fact]
    public async Task Undelivered_and_failed_callbacks_carry_twilios_error_code_and_the_tile_stays_connected()
    {
        var (gym, writer) = await GymAsync();
        var (undeliveredId, undelivered) = await SentAsync(writer);
        var (failedId, failed) = await SentAsync(writer);

        await CallBackAsync(undelivered, "sending");
        await CallBackAsync(undelivered, "undelivered", 30003);
        await CallBackAsync(undelivered, "sent");
        await CallBackAsync(failed, "failed", 30008);

        var first = await MessageAsync(undeliveredId);
        Assert.Equal(SmsStatuses.Undelivered, first.Status);
        Assert.Equal("Twilio reported it undelivered (error 30003)", first.Error);
        Assert.Equal(SmsStatuses.Undelivered, await DtoStatusAsync(writer, undeliveredId));
        var second = await MessageAsync(failedId);
        Assert.Equal(SmsStatuses.Undelivered, second.Status);
        Assert.Equal("Twilio reported it failed (error 30008)", second.Error);
        // The member's phone or carrier refused it; the connector works.
        Assert.Equal(IntegrationState.Connected, (await TileAsync(gym.GymId)).State);

        // A delivery receipt after all (carriers report late) is proof it arrived.
        await CallBackAsync(undelivered, "delivered");
        var late = await MessageAsync(undeliveredId);
        Assert.Equal(SmsStatuses.Delivered, late.Status);
        Assert.Null(late.Error);
    }

    [Fact]
    public async Task A_burst_of_callbacks_during_a_long_write_waits_its_turn_without_touching_the_database_and_all_are_applied()
    {
        const int burst = 20;
        var (gym, _) = await GymAsync();
        var now = fx.Clock.GetUtcNow();
        // A bulk send, recorded sent, and one more message that a long write changes meanwhile.
        var (sent, other) = await fx.WithDbAsync(async db =>
        {
            var messages = new List<(Guid Id, TwilioMessage Twilio)>();
            for (var i = 0; i < burst; i++)
            {
                var m = SmsService.Queue(db, gym.GymId, new SendSmsRequest("+15551234567", $"Bulk {i} {Guid.NewGuid():N}"), now.UtcDateTime);
                (m.Status, m.ProviderMessageId, m.Attempts, m.SentAt) = (SmsStatuses.Sent, "SM" + Guid.NewGuid().ToString("N"), 1, now.UtcDateTime);
                messages.Add((m.Id, new TwilioMessage(m.ProviderMessageId, m.Phone, "+15550001111", m.Message, now)
                {
                    AccountSid = TwilioFixture.AccountSid, StatusCallback = TwilioCallbackFixture.CallbackUrl,
                }));
            }
            var failed = SmsService.Queue(db, gym.GymId, new SendSmsRequest("+15551234567", "Other"), now.UtcDateTime);
            failed.Status = SmsStatuses.Failed;
            await db.SaveChangesAsync();
            return (messages, failed.Id);
        });
        var logStart = fx.Logs.Lines.Count;

        // A long write, as the gate's holders make them: the gate, then a write transaction (on SQLite the database's one write lock).
        await using var scope = fx.Services.CreateAsyncScope();
        var longWrite = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var held = await fx.Services.GetRequiredService<SqliteWriteGate>().EnterAsync(longWrite, CancellationToken.None);
        var tx = await longWrite.Database.BeginTransactionAsync();
        List<Task<HttpResponseMessage>> posts;
        try
        {
            await longWrite.SmsMessages.Where(m => m.Id == other).ExecuteUpdateAsync(s => s.SetProperty(m => m.Error, "a long write"));
            fx.UpdateWatch.Arm("sms_messages", [.. sent.Select(m => m.Twilio.Sid)]);
            // From addresses of their own: posts in flight count against the rejected posts' limit until accepted.
            posts = [.. sent.Select(m => fx.Twilio.CallBackAsync(fx.BaseAddress, m.Twilio, "delivered", from: NewAddress()))];
            if (fx.Store == Store.Sqlite)
            {
                // A callback writing now would wait in SQLite's busy handler, holding a thread-pool thread. A callback
                // waiting at the gate gives no sign of it, so this watches for the write that must not come, for a while.
                await Task.WhenAny(fx.UpdateWatch.Began, Task.Delay(TimeSpan.FromSeconds(2)));
                Assert.False(fx.UpdateWatch.Began.IsCompleted, "a status callback wrote to SQLite while another writer held the gate");
                Assert.DoesNotContain(posts, p => p.IsCompleted);
            }
            else
            {
                // PostgreSQL locks rows: a write to another message holds none of them up.
                await Task.WhenAll(posts).WaitAsync(TimeSpan.FromSeconds(30));
            }
        }
        finally
        {
            fx.UpdateWatch.Disarm();
            await tx.CommitAsync();
            await tx.DisposeAsync();
            held.Dispose();
        }

        var responses = await Task.WhenAll(posts).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        foreach (var (id, _) in sent)
        {
            Assert.Equal(SmsStatuses.Delivered, (await MessageAsync(id)).Status);
        }
        Assert.Equal("a long write", (await MessageAsync(other)).Error);
        fx.Logs.AssertNoErrorsSince(logStart);
    }

    [Fact]
    public async Task An_undelivered_message_the_owner_queues_again_is_sent_anew_and_its_earlier_send_is_not_taken_for_an_uncertain_resend()
    {
        var (gym, writer) = await GymAsync();
        using var owner = gym.Owner();
        var phone = NewPhone();
        var body = $"Phone off {Guid.NewGuid():N}";
        var (id, first) = await SentAsync(writer, body, phone);
        await CallBackAsync(first, "undelivered", 30003);
        Assert.Equal(SmsStatuses.Undelivered, (await MessageAsync(id)).Status);

        // The resend meets a 503 Twilio did not accept, so the attempt after it looks in Twilio's list first, where
        // the earlier send has the same text and lies inside the look-up's window.
        fx.Twilio.FailNext(503, """{"code":20503,"message":"Service Unavailable","status":503}""");
        var retried = await (await owner.PostAsync($"/api/gym/sms/{id}/retry", null)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("queued", retried.GetProperty("status").GetString());
        var waiting = await AwaitAsync(id, m => m.Attempts == 1 && m.Status != SmsStatuses.Sending);
        Assert.Equal(SmsStatuses.Queued, waiting.Status);
        Assert.NotNull(waiting.UncertainSince);

        fx.Clock.Advance(TimeSpan.FromSeconds(30));
        var resent = await AwaitAsync(id, m => m.Status is not (SmsStatuses.Queued or SmsStatuses.Sending));
        Assert.Equal(SmsStatuses.Sent, resent.Status);
        Assert.Equal(2, resent.Attempts);
        Assert.Null(resent.Error);
        var accepted = fx.Twilio.AcceptedWith(body);
        Assert.Equal(new[] { resent.ProviderMessageId, first.Sid }, accepted.Select(m => (string?)m.Sid));
        Assert.Single(fx.Twilio.ListRequests, r => r.Form.GetValueOrDefault("To") == phone);

        // The new send's receipt applies; the old one's no longer names the message.
        await CallBackAsync(first, "delivered");
        Assert.Equal(SmsStatuses.Sent, (await MessageAsync(id)).Status);
        await CallBackAsync(accepted[0], "delivered");
        Assert.Equal(SmsStatuses.Delivered, (await MessageAsync(id)).Status);
        var conflict = await (await owner.PostAsync($"/api/gym/sms/{id}/retry", null)).AssertErrorAsync(HttpStatusCode.Conflict);
        Assert.Equal("Only failed or undelivered messages can be retried; this one is delivered", conflict);
    }

    [Fact]
    public async Task An_undelivered_message_an_uncertain_attempt_found_in_twilios_list_is_sent_again_without_looking_first()
    {
        var (gym, writer) = await GymAsync();
        var phone = NewPhone();
        var body = $"Found undelivered {Guid.NewGuid():N}";
        fx.Twilio.FailNext(502, """{"code":20500,"message":"Bad Gateway","status":502}""", accepted: true);
        var sms = await (await writer.PostJsonAsync("/api/zapier/actions?type=send_sms", new { phone, message = body })).AssertStatusAsync(HttpStatusCode.Created);
        var id = sms.GetProperty("id").GetGuid();
        Assert.Equal(SmsStatuses.Queued, (await AwaitAsync(id, m => m.Attempts == 1 && m.Status != SmsStatuses.Sending)).Status);
        var twilio = Assert.Single(fx.Twilio.AcceptedWith(body));
        (twilio.Status, twilio.ErrorCode) = ("undelivered", 30003);
        fx.Clock.Advance(TimeSpan.FromSeconds(30));
        var found = await AwaitAsync(id, m => m.Status is not (SmsStatuses.Queued or SmsStatuses.Sending));
        Assert.Equal(SmsStatuses.Undelivered, found.Status);
        Assert.Equal(twilio.Sid, found.ProviderMessageId);
        Assert.Single(fx.Twilio.ListRequests, r => r.Form.GetValueOrDefault("To") == phone);

        // Twilio took it and said it did not arrive: nothing is in doubt, so the owner's retry sends it at once.
        var retried = await (await gym.Owner().PostAsync($"/api/gym/sms/{id}/retry", null)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("queued", retried.GetProperty("status").GetString());
        var resent = await AwaitAsync(id, m => m.Status is not (SmsStatuses.Queued or SmsStatuses.Sending));
        Assert.Equal(SmsStatuses.Sent, resent.Status);
        Assert.Equal(1, resent.Attempts);
        Assert.Null(resent.UncertainSince);
        Assert.Equal(new[] { resent.ProviderMessageId, twilio.Sid }, fx.Twilio.AcceptedWith(body).Select(m => (string?)m.Sid));
        Assert.Single(fx.Twilio.ListRequests, r => r.Form.GetValueOrDefault("To") == phone);
    }

    [Fact]
    public async Task Callbacks_that_come_before_the_sender_recorded_the_sid_are_applied_when_it_does_delivered_winning_whatever_their_order()
    {
        using var deliveries = new MetricCollector<long>(fx.Services.GetRequiredService<IMeterFactory>(), SmsMetrics.MeterName, "gymwire.sms.deliveries");
        var (_, writer) = await GymAsync();
        var body = $"Early {Guid.NewGuid():N}";
        Guid id;
        TwilioMessage twilio;
        fx.Twilio.HoldAnswers();
        try
        {
            var sms = await (await writer.PostJsonAsync("/api/zapier/actions?type=send_sms", new { phone = "+15551234567", message = body })).AssertStatusAsync(HttpStatusCode.Created);
            id = sms.GetProperty("id").GetGuid();
            await fx.Twilio.Held.WaitAsync(TimeSpan.FromSeconds(20));
            // Twilio has created the message and reports on it before its answer reaches the sender, out of order as ever.
            twilio = Assert.Single(fx.Twilio.AcceptedWith(body));
            await CallBackAsync(twilio, "sent");
            await CallBackAsync(twilio, "delivered");
            await CallBackAsync(twilio, "undelivered", 30003);
            var sending = await MessageAsync(id);
            Assert.Equal(SmsStatuses.Sending, sending.Status);
            Assert.Null(sending.ProviderMessageId);
            Assert.Equal(2, await KeptAsync(twilio.Sid));
        }
        finally
        {
            fx.Twilio.ReleaseAnswers();
        }

        var recorded = await AwaitAsync(id, m => m.Status != SmsStatuses.Sending);
        Assert.Equal(SmsStatuses.Delivered, recorded.Status);
        Assert.Equal(twilio.Sid, recorded.ProviderMessageId);
        Assert.Null(recorded.Error);
        Assert.Equal(0, await KeptAsync(twilio.Sid));
        await CallBackAsync(twilio, "sent");
        Assert.Equal(SmsStatuses.Delivered, (await MessageAsync(id)).Status);
        Assert.Equal(1, deliveries.GetMeasurementSnapshot().Where(m => Equals(m.Tags.GetValueOrDefault("gymwire.outcome"), "delivered")).Sum(m => m.Value));
        Assert.Equal(0, deliveries.GetMeasurementSnapshot().Where(m => Equals(m.Tags.GetValueOrDefault("gymwire.outcome"), "undelivered")).Sum(m => m.Value));
    }

    [Fact]
    public async Task A_callback_that_comes_after_the_look_up_listed_an_uncertain_attempts_message_and_before_it_is_recorded_is_applied()
    {
        var (_, writer) = await GymAsync();
        var phone = NewPhone();
        var body = $"Found then reported {Guid.NewGuid():N}";
        fx.Twilio.FailNext(502, """{"code":20500,"message":"Bad Gateway","status":502}""", accepted: true);
        var sms = await (await writer.PostJsonAsync("/api/zapier/actions?type=send_sms", new { phone, message = body })).AssertStatusAsync(HttpStatusCode.Created);
        var id = sms.GetProperty("id").GetGuid();
        Assert.Equal(SmsStatuses.Queued, (await AwaitAsync(id, m => m.Attempts == 1 && m.Status != SmsStatuses.Sending)).Status);
        var twilio = Assert.Single(fx.Twilio.AcceptedWith(body));

        // The look-up lists the message as Twilio still has it queued; right after, while the sender checks that no
        // other message carries its SID, Twilio reports it undelivered.
        fx.AfterRead.Arm("sms_messages", twilio.Sid, async () =>
            Assert.Equal(HttpStatusCode.OK, (await fx.Twilio.CallBackAsync(fx.BaseAddress, twilio, "undelivered", 30003, NewAddress())).StatusCode));
        try
        {
            fx.Clock.Advance(TimeSpan.FromSeconds(30));
            var found = await AwaitAsync(id, m => m.Status is not (SmsStatuses.Queued or SmsStatuses.Sending));
            Assert.True(fx.AfterRead.Ran.IsCompleted);
            Assert.Equal(SmsStatuses.Undelivered, found.Status);
            Assert.Equal(twilio.Sid, found.ProviderMessageId);
            Assert.Equal("Twilio reported it undelivered (error 30003)", found.Error);
        }
        finally
        {
            fx.AfterRead.Disarm();
        }
        Assert.Single(fx.Twilio.AcceptedWith(body));
        Assert.Equal(0, await KeptAsync(twilio.Sid));
    }

    [Fact]
    public async Task A_status_kept_for_a_sid_no_message_records_is_deleted_a_day_after_it_came()
    {
        var (_, writer) = await GymAsync();
        // Sent from the account by something else: no message of Gymwire's will ever carry its SID.
        var stranger = new TwilioMessage("SM" + Guid.NewGuid().ToString("N"), "+15557654321", "+15550001111", "not Gymwire's", fx.Clock.GetUtcNow())
        {
            AccountSid = TwilioFixture.AccountSid, StatusCallback = TwilioCallbackFixture.CallbackUrl,
        };
        await CallBackAsync(stranger, "undelivered", 30005);
        await CallBackAsync(stranger, "sent");
        Assert.Equal(1, await KeptAsync(stranger.Sid));

        // Each send's pass deletes those kept longer than a day.
        fx.Clock.Advance(SmsEarlyStatus.Kept - TimeSpan.FromMinutes(1));
        await SentAsync(writer);
        Assert.Equal(1, await KeptAsync(stranger.Sid));
        fx.Clock.Advance(TimeSpan.FromMinutes(2));
        await SentAsync(writer);
        Assert.Equal(0, await KeptAsync(stranger.Sid));
    }

    private Task<int> KeptAsync(string sid) => fx.WithDbAsync(db => db.SmsEarlyStatuses.CountAsync(e => e.ProviderMessageId == sid));

    [Fact]
    public async Task Unsigned_or_badly_signed_callbacks_all_get_one_403_change_nothing_and_are_logged_at_debug_only()
    {
        var (_, writer) = await GymAsync();
        var (id, twilio) = await SentAsync(writer);
        var logStart = fx.Logs.Lines.Count;
        var form = new Dictionary<string, string>
        {
            ["AccountSid"] = TwilioFixture.AccountSid, ["MessageSid"] = twilio.Sid, ["MessageStatus"] = "delivered", ["To"] = twilio.To,
        };
        // Signed over the address the request reached, as a server trusting the Host header would check it.
        var reached = new Uri(fx.BaseAddress, TwilioStatusCallbacks.Path).ToString();
        var posts = new (string Case, Func<Task<HttpResponseMessage>> Post)[]
        {
            ("no signature", () => TwilioStandIn.PostSignedAsync(fx.BaseAddress, TwilioCallbackFixture.CallbackUrl, new(form), null, NewAddress())),
            ("another account's token", () => TwilioStandIn.PostSignedAsync(fx.BaseAddress, TwilioCallbackFixture.CallbackUrl, new(form),
                TwilioStandIn.Sign(TwilioCallbackFixture.CallbackUrl, form, "someone-elses-token"), NewAddress())),
            ("signed over the reached address", () => TwilioStandIn.PostSignedAsync(fx.BaseAddress, TwilioCallbackFixture.CallbackUrl, new(form),
                fx.Twilio.Sign(reached, form), NewAddress())),
            ("a parameter changed after signing", () => fx.Twilio.CallBackAsync(fx.BaseAddress, twilio, "undelivered", 30003, NewAddress(),
                f => f["MessageStatus"] = "delivered")),
            ("a parameter added after signing", () => fx.Twilio.CallBackAsync(fx.BaseAddress, twilio, "sent", null, NewAddress(),
                f => f["ErrorCode"] = "30003")),
            ("not base64", () => TwilioStandIn.PostSignedAsync(fx.BaseAddress, TwilioCallbackFixture.CallbackUrl, new(form), "not a signature!", NewAddress())),
        };
        var answers = new List<string>();
        foreach (var (name, post) in posts)
        {
            var response = await post();
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{name}: {response.StatusCode}");
            answers.Add(await response.AssertErrorAsync(HttpStatusCode.Forbidden));
        }
        // A JSON body, signed over the URL alone.
        var json = new HttpRequestMessage(HttpMethod.Post, TwilioStatusCallbacks.Path)
        {
            Content = new StringContent($$"""{"MessageSid":"{{twilio.Sid}}","MessageStatus":"delivered"}""", System.Text.Encoding.UTF8, "application/json"),
        };
        json.Headers.Add("X-Twilio-Signature", fx.Twilio.Sign(TwilioCallbackFixture.CallbackUrl, new Dictionary<string, string>()));
        json.Headers.Add("X-Forwarded-For", NewAddress());
        answers.Add(await (await fx.Client().SendAsync(json)).AssertErrorAsync(HttpStatusCode.Forbidden));

        Assert.Equal([TwilioStatusCallbacks.SignatureRejected], answers.Distinct());
        var unchanged = await MessageAsync(id);
        Assert.Equal(SmsStatuses.Sent, unchanged.Status);
        Assert.Null(unchanged.Error);
        var lines = fx.Logs.Lines.Skip(logStart).Where(l => l.Contains(CallbacksCategory, StringComparison.Ordinal) && l.Contains("Rejected", StringComparison.Ordinal)).ToList();
        Assert.Equal(posts.Length + 1, lines.Count);
        Assert.All(lines, l => Assert.StartsWith("Debug ", l, StringComparison.Ordinal));
        Assert.DoesNotContain(fx.Logs.Lines.Skip(logStart), l => l.Contains(TwilioFixture.AuthToken, StringComparison.Ordinal));
        fx.Logs.AssertNoErrorsSince(logStart);
    }

    [Fact]
    public async Task A_callback_for_a_message_gymwire_does_not_know_gets_200_and_changes_nothing()
    {
        var (_, writer) = await GymAsync();
        var (id, twilio) = await SentAsync(writer);
        var before = await (await writer.GetAsync("/api/gym/sms")).Content.ReadAsStringAsync();
        // Sent from the account by something else (Twilio's console, another system).
        var stranger = new TwilioMessage("SM" + Guid.NewGuid().ToString("N"), "+15557654321", "+15550001111", "not Gymwire's", fx.Clock.GetUtcNow())
        {
            AccountSid = TwilioFixture.AccountSid, StatusCallback = TwilioCallbackFixture.CallbackUrl,
        };

        await CallBackAsync(stranger, "delivered");
        await CallBackAsync(stranger, "undelivered", 30005);

        Assert.Equal(before, await (await writer.GetAsync("/api/gym/sms")).Content.ReadAsStringAsync());
        Assert.Equal(0, await fx.WithDbAsync(db => db.SmsMessages.CountAsync(m => m.ProviderMessageId == stranger.Sid)));
        Assert.Equal(SmsStatuses.Sent, (await MessageAsync(id)).Status);
        Assert.Equal(twilio.Sid, (await MessageAsync(id)).ProviderMessageId);

        // Signed but without a message id: the sender's mistake, told as such.
        var form = new Dictionary<string, string> { ["MessageStatus"] = "delivered" };
        var missing = await TwilioStandIn.PostSignedAsync(fx.BaseAddress, TwilioCallbackFixture.CallbackUrl, form,
            fx.Twilio.Sign(TwilioCallbackFixture.CallbackUrl, form), NewAddress());
        Assert.Contains("MessageSid", await missing.AssertErrorAsync(HttpStatusCode.BadRequest), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rejected_callbacks_past_the_limit_get_429_before_any_signature_is_checked_and_accepted_ones_never_count()
    {
        var (_, writer) = await GymAsync();
        var (id, twilio) = await SentAsync(writer);
        var shared = NewAddress();
        var forged = new Dictionary<string, string> { ["MessageSid"] = twilio.Sid, ["MessageStatus"] = "undelivered", ["ErrorCode"] = "30003" };
        Task<HttpResponseMessage> ForgeAsync(string from) => TwilioStandIn.PostSignedAsync(fx.BaseAddress, TwilioCallbackFixture.CallbackUrl, new(forged),
            TwilioStandIn.Sign(TwilioCallbackFixture.CallbackUrl, forged, "forger-token"), from);

        for (var i = 0; i < TwilioCallbackFixture.Limit - 1; i++)
        {
            await (await ForgeAsync(shared)).AssertErrorAsync(HttpStatusCode.Forbidden);
        }
        // Twilio's callbacks from the same address, three times the limit of them: all accepted, none counted.
        for (var i = 0; i < 3 * TwilioCallbackFixture.Limit; i++)
        {
            var response = await fx.Twilio.CallBackAsync(fx.BaseAddress, twilio, i % 2 == 0 ? "sent" : "queued", from: shared);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        await (await ForgeAsync(shared)).AssertErrorAsync(HttpStatusCode.Forbidden);

        // Past the limit, even Twilio's own post from that address is refused before it is looked at.
        var limited = await fx.Twilio.CallBackAsync(fx.BaseAddress, twilio, "delivered", from: shared);
        Assert.Contains("Rate limit exceeded", await limited.AssertErrorAsync(HttpStatusCode.TooManyRequests), StringComparison.Ordinal);
        Assert.InRange(int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture), 1, 60);
        Assert.Equal(SmsStatuses.Sent, (await MessageAsync(id)).Status);

        // Another address is not held up.
        await (await ForgeAsync(NewAddress())).AssertErrorAsync(HttpStatusCode.Forbidden);
        await CallBackAsync(twilio, "delivered");
        Assert.Equal(SmsStatuses.Delivered, (await MessageAsync(id)).Status);

        // A window later the address is admitted again.
        fx.Clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(HttpStatusCode.OK, (await fx.Twilio.CallBackAsync(fx.BaseAddress, twilio, "delivered", from: shared)).StatusCode);
    }

    [Fact]
    public async Task An_earlier_attempt_found_in_twilios_list_that_twilio_could_not_deliver_is_recorded_undelivered_and_later_callbacks_apply()
    {
        var (_, writer) = await GymAsync();
        var body = $"Uncertain {Guid.NewGuid():N}";
        fx.Twilio.FailNext(502, """{"code":20500,"message":"Bad Gateway","status":502}""", accepted: true);
        var sms = await (await writer.PostJsonAsync("/api/zapier/actions?type=send_sms", new { phone = "+15551234567", message = body })).AssertStatusAsync(HttpStatusCode.Created);
        var id = sms.GetProperty("id").GetGuid();
        var uncertain = await AwaitAsync(id, m => m.Attempts == 1 && m.Status != SmsStatuses.Sending);
        Assert.Equal(SmsStatuses.Queued, uncertain.Status);
        var twilio = Assert.Single(fx.Twilio.AcceptedWith(body));

        // Its callback came while no message carried its SID: Twilio is answered, nothing changes.
        await CallBackAsync(twilio, "undelivered", 30006);
        Assert.Equal(SmsStatuses.Queued, (await MessageAsync(id)).Status);

        fx.Clock.Advance(TimeSpan.FromSeconds(30));
        var found = await AwaitAsync(id, m => m.Status is not (SmsStatuses.Queued or SmsStatuses.Sending));
        Assert.Equal(SmsStatuses.Undelivered, found.Status);
        Assert.Equal(twilio.Sid, found.ProviderMessageId);
        Assert.Equal("Twilio reported it undelivered (error 30006)", found.Error);
        Assert.Single(fx.Twilio.AcceptedWith(body));

        await CallBackAsync(twilio, "delivered");
        Assert.Equal(SmsStatuses.Delivered, (await MessageAsync(id)).Status);
    }
}

/// <summary>
/// Once armed, notes when an UPDATE of one table begins that carries one of some texts among its parameters (any
/// UPDATE of it, given none).
/// </summary>
public sealed class UpdateWatch : DbCommandInterceptor
{
    private readonly Lock _lock = new();
    private bool _armed;
    private string _table = "";
    private HashSet<string> _texts = [];
    private TaskCompletionSource _began = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Began => _began.Task;

    public void Arm(string table, IEnumerable<string> texts)
    {
        lock (_lock)
        {
            (_armed, _table, _texts) = (true, table, texts.ToHashSet(StringComparer.Ordinal));
            _began = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    public void Disarm()
    {
        lock (_lock)
        {
            _armed = false;
        }
    }

    public override InterceptionResult<int> NonQueryExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<int> result)
    {
        Watch(command);
        return result;
    }

    public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        Watch(command);
        return ValueTask.FromResult(result);
    }

    private void Watch(DbCommand command)
    {
        lock (_lock)
        {
            if (_armed && command.CommandText.Contains("UPDATE", StringComparison.OrdinalIgnoreCase)
                && command.CommandText.Contains(_table, StringComparison.Ordinal)
                && (_texts.Count == 0 || command.Parameters.Cast<DbParameter>().Any(p => p.Value is string text && _texts.Contains(text))))
            {
                _began.TrySetResult();
            }
        }
    }
}
