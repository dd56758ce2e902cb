using System.Data.Common;
using System.Net;
using System.Text;
using Gymwire.Data;
using Gymwire.Features.Dashboard.Integrations;
using Gymwire.Features.Sms;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Gymwire.Tests.Sms;

public abstract class TwilioFixture(Store store) : GymwireFixture(store), IAsyncLifetime
{
    public const string AccountSid = "AC00000000000000000000000000000001";
    public const string AuthToken = "twilio-test-auth-token-0001";

    private TwilioStandIn? _twilio;

    /// <summary>Made when the server's settings first name it, so that it dates messages by the fixture's clock.</summary>
    public TwilioStandIn Twilio => _twilio ??= new TwilioStandIn(Clock, AuthToken);

    public AfterUpdate AfterUpdate { get; } = new();

    public AfterRead AfterRead { get; } = new();

    public UpdateWatch UpdateWatch { get; } = new();

    protected override void ConfigureServices(IServiceCollection services)
    {
        services.AddSingleton<IInterceptor>(AfterUpdate);
        services.AddSingleton<IInterceptor>(AfterRead);
        services.AddSingleton<IInterceptor>(UpdateWatch);
    }

    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        new("Sms:Provider", "twilio"),
        new("Sms:Twilio:BaseUrl", Twilio.BaseAddress.ToString()),
        new("Sms:Twilio:AccountSid", AccountSid),
        new("Sms:Twilio:AuthToken", AuthToken),
        new("Sms:Twilio:From", "+15550001111"),
        new("Sms:RetryDelay", "00:00:30"),
        new("Sms:MaxAttempts", "3"),
    ];

    /// <summary>A gym and a client with a read and write API key, as Zapier would queue messages.</summary>
    public async Task<(TestGym Gym, HttpClient Writer)> GymWithWriterAsync()
    {
        var gym = await CreateGymAsync();
        var key = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "Zapier", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        return (gym, Client(key.GetProperty("key").GetString()));
    }

    public Task<SmsMessage> SmsAsync(Guid id) => WithDbAsync(db => db.SmsMessages.AsNoTracking().SingleAsync(m => m.Id == id));

    /// <summary>Wakes the sender and polls (bounded) until the message is <paramref name="done"/>.</summary>
    public async Task<SmsMessage> AwaitSmsAsync(Guid id, Func<SmsMessage, bool> done)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            Services.GetRequiredService<SmsSignal>().Notify();
            var message = await SmsAsync(id);
            if (done(message))
            {
                return message;
            }
            Assert.True(DateTime.UtcNow < deadline, $"SMS {id} stayed {message.Status} ({message.Error})");
            await Task.Delay(20);
        }
    }

    public async Task<IntegrationStatus> SmsTileAsync(Guid gymId)
    {
        await using var scope = Services.CreateAsyncScope();
        var tiles = scope.ServiceProvider.GetRequiredService<IntegrationTiles>();
        return await tiles.StatusAsync(tiles.Find("sms")!, gymId, CancellationToken.None);
    }

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        if (_twilio is not null)
        {
            await _twilio.DisposeAsync();
        }
    }
}

public sealed class SqliteTwilio() : TwilioFixture(Store.Sqlite);

public sealed class PostgresTwilio() : TwilioFixture(Store.Postgres);

public abstract class SmsSenderTests(TwilioFixture fx)
{
    public sealed class Sqlite(SqliteTwilio f) : SmsSenderTests(f), IClassFixture<SqliteTwilio>;
    public sealed class Postgres(PostgresTwilio f) : SmsSenderTests(f), IClassFixture<PostgresTwilio>;

    private Task<(TestGym Gym, HttpClient Writer)> GymAsync() => fx.GymWithWriterAsync();

    private static async Task<Guid> QueueAsync(HttpClient writer, string message, string phone = "+15551234567")
    {
        var sms = await (await writer.PostJsonAsync("/api/zapier/actions?type=send_sms", new { phone, message })).AssertStatusAsync(HttpStatusCode.Created);
        return sms.GetProperty("id").GetGuid();
    }

    private Task<SmsMessage> MessageAsync(Guid id) => fx.SmsAsync(id);

    /// <summary>A message a sender has claimed and is sending (its first attempt), as its row stands until the attempt is recorded.</summary>
    private Task<Guid> ClaimedAsync(Guid gymId, string phone, string body, DateTime now, DateTime claimedUntil) => fx.WithDbAsync(async db =>
    {
        var m = SmsService.Queue(db, gymId, new SendSmsRequest(phone, body), now);
        m.Status = SmsStatuses.Sending;
        m.Attempts = 1;
        m.LastAttemptAt = now;
        m.ClaimedUntil = claimedUntil;
        await db.SaveChangesAsync();
        return m.Id;
    });

    /// <summary>Wakes the sender and polls (bounded) until the message reaches one of <paramref name="statuses"/>.</summary>
    private Task<SmsMessage> AwaitStatusAsync(Guid id, params string[] statuses) => AwaitAsync(id, m => statuses.Contains(m.Status));

    private Task<SmsMessage> AwaitAsync(Guid id, Func<SmsMessage, bool> done) => fx.AwaitSmsAsync(id, done);

    private int RequestsWith(string body) => fx.Twilio.Requests.Count(r => r.Form.GetValueOrDefault("Body") == body);

    /// <summary>A number of its own, so that a test can tell its look-ups in Twilio's list from other tests'.</summary>
    private static string NewPhone() => "+1555" + Random.Shared.Next(1_000_000, 10_000_000).ToString(System.Globalization.CultureInfo.InvariantCulture);

    private List<TwilioRequest> LookUpsOf(string phone) => [.. fx.Twilio.ListRequests.Where(r => r.Form.GetValueOrDefault("To") == phone)];

    private const string ProviderCategory = "Gymwire.Features.Sms.TwilioSmsProvider";

    private static string BasicAuth => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{TwilioFixture.AccountSid}:{TwilioFixture.AuthToken}"));

    private static readonly RecordedElsewhere NoneRecorded = (_, _) => Task.FromResult<IReadOnlySet<string>>(new HashSet<string>());

    private TwilioSmsProvider Provider(HttpClient http, string from = "+15550001111")
    {
        var options = Options.Create(new SmsOptions
        {
            Provider = SmsOptions.TwilioProvider,
            Twilio = new TwilioOptions { BaseUrl = fx.Twilio.BaseAddress.ToString(), AccountSid = TwilioFixture.AccountSid, AuthToken = TwilioFixture.AuthToken, From = from },
        });
        var callbacks = new TwilioStatusCallbacks(options, Options.Create(new Gymwire.Features.Gyms.AuthOptions()), fx.Services.GetRequiredService<SmsMetrics>(), fx.Clock,
            Microsoft.Extensions.Logging.Abstractions.NullLogger<TwilioStatusCallbacks>.Instance);
        return new(http, options, callbacks, fx.Clock, Microsoft.Extensions.Logging.Abstractions.NullLogger<TwilioSmsProvider>.Instance);
    }

    private Task<IntegrationStatus> TileAsync(Guid gymId) => fx.SmsTileAsync(gymId);

    [Fact]
    public async Task A_queued_sms_is_sent_through_twilio_and_a_restart_does_not_send_it_again()
    {
        var (gym, writer) = await GymAsync();
        var body = $"Welcome {Guid.NewGuid():N}";
        var id = await QueueAsync(writer, body);

        var sent = await AwaitStatusAsync(id, SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, sent.Status);
        Assert.StartsWith("SM", sent.ProviderMessageId, StringComparison.Ordinal);
        Assert.Equal(1, sent.Attempts);
        var request = Assert.Single(fx.Twilio.Requests, r => r.Form.GetValueOrDefault("Body") == body);
        Assert.Equal($"/2010-04-01/Accounts/{TwilioFixture.AccountSid}/Messages.json", request.Path);
        Assert.Equal("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{TwilioFixture.AccountSid}:{TwilioFixture.AuthToken}")), request.Authorization);
        Assert.Equal("+15551234567", request.Form["To"]);
        Assert.Equal("+15550001111", request.Form["From"]);

        var listed = await (await writer.GetAsync("/api/gym/sms?status=sent")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(sent.ProviderMessageId, Assert.Single(listed.GetProperty("messages").EnumerateArray()).GetProperty("provider_message_id").GetString());

        await fx.RestartAsync();
        writer = fx.Client(writer.DefaultRequestHeaders.Authorization!.Parameter);
        // A second message after the restart proves the new sender has run a pass over the queue.
        var after = await QueueAsync(writer, body + " again");
        await AwaitStatusAsync(after, SmsStatuses.Sent);
        Assert.Equal(1, RequestsWith(body));
        Assert.Equal(SmsStatuses.Sent, (await MessageAsync(id)).Status);
        Assert.Equal(IntegrationState.Connected, (await TileAsync(gym.GymId)).State);
        Assert.DoesNotContain(fx.Logs.Lines, l => l.Contains(body, StringComparison.Ordinal) || l.Contains("+15551234567", StringComparison.Ordinal)
                                                  || l.Contains(TwilioFixture.AuthToken, StringComparison.Ordinal)
                                                  || l.Contains(TwilioFixture.AccountSid, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Without_a_public_url_twilio_is_asked_for_no_status_callback_and_callbacks_are_refused()
    {
        var (_, writer) = await GymAsync();
        var body = $"No callback {Guid.NewGuid():N}";
        var id = await QueueAsync(writer, body);
        var sent = await AwaitStatusAsync(id, SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, sent.Status);
        Assert.False(Assert.Single(fx.Twilio.Requests, r => r.Form.GetValueOrDefault("Body") == body).Form.ContainsKey("StatusCallback"));

        // Signed as Twilio would sign a callback to the address the server listens on: without a public URL there is
        // no URL to check signatures against, so none verifies.
        var url = new Uri(fx.BaseAddress, TwilioStatusCallbacks.Path).ToString();
        var form = new Dictionary<string, string> { ["MessageSid"] = sent.ProviderMessageId!, ["MessageStatus"] = "delivered" };
        var response = await TwilioStandIn.PostSignedAsync(fx.BaseAddress, url, form, fx.Twilio.Sign(url, form), "198.51.100.81");
        Assert.Equal(TwilioStatusCallbacks.SignatureRejected, await response.AssertErrorAsync(HttpStatusCode.Forbidden));
        Assert.Equal(SmsStatuses.Sent, (await MessageAsync(id)).Status);
    }

    [Fact]
    public async Task A_transient_failure_is_retried_after_the_backoff_on_the_clock()
    {
        var (_, writer) = await GymAsync();
        fx.Twilio.FailNext(503, """{"code":20500,"message":"Internal Server Error","status":503}""");
        var body = $"Retry {Guid.NewGuid():N}";
        var id = await QueueAsync(writer, body);

        var waiting = await AwaitAsync(id, m => m.Attempts > 0 && m.Status != SmsStatuses.Sending);
        Assert.Equal(SmsStatuses.Queued, waiting.Status);
        Assert.Equal(1, waiting.Attempts);
        Assert.Contains("Twilio 503 (20500)", waiting.Error, StringComparison.Ordinal);
        Assert.Equal(fx.Clock.GetUtcNow().UtcDateTime.AddSeconds(30), waiting.NextAttemptAt);

        fx.Clock.Advance(TimeSpan.FromSeconds(30));
        var sent = await AwaitStatusAsync(id, SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, sent.Status);
        Assert.Equal(2, sent.Attempts);
        Assert.Null(sent.Error);
        Assert.Equal(2, RequestsWith(body));
    }

    [Fact]
    public async Task A_send_that_timed_out_after_Twilio_accepted_it_is_found_in_Twilios_list_and_not_sent_again()
    {
        var (_, writer) = await GymAsync();
        var phone = NewPhone();
        var body = $"Slow {Guid.NewGuid():N}";
        Guid id;
        fx.Twilio.HoldAnswers();
        try
        {
            id = await QueueAsync(writer, body, phone);
            await fx.Twilio.Held.WaitAsync(TimeSpan.FromSeconds(20));
            // Twilio has accepted the message and not answered yet: Sms:RequestTimeout (30 s) passes on the sender's clock.
            fx.Clock.Advance(TimeSpan.FromSeconds(30));
            var uncertain = await AwaitAsync(id, m => m.Attempts == 1 && m.Status != SmsStatuses.Sending);
            Assert.Equal(SmsStatuses.Queued, uncertain.Status);
            Assert.Contains("did not answer within 30 s", uncertain.Error, StringComparison.Ordinal);
            Assert.Equal(uncertain.LastAttemptAt, uncertain.UncertainSince);
        }
        finally
        {
            fx.Twilio.ReleaseAnswers();
        }

        fx.Clock.Advance(TimeSpan.FromSeconds(30));
        var sent = await AwaitStatusAsync(id, SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, sent.Status);
        Assert.Equal(2, sent.Attempts);
        Assert.Equal(Assert.Single(fx.Twilio.AcceptedWith(body)).Sid, sent.ProviderMessageId);
        Assert.Equal(1, RequestsWith(body));
        var lookUp = Assert.Single(LookUpsOf(phone));
        Assert.Equal($"/2010-04-01/Accounts/{TwilioFixture.AccountSid}/Messages.json", lookUp.Path[..lookUp.Path.IndexOf('?', StringComparison.Ordinal)]);
        Assert.Equal("+15550001111", lookUp.Form["From"]);
        Assert.Equal(TwilioSmsProvider.LookupPageSize.ToString(System.Globalization.CultureInfo.InvariantCulture), lookUp.Form["PageSize"]);
        Assert.Equal(BasicAuth, lookUp.Authorization);
    }

    [Fact]
    public async Task A_5xx_after_Twilio_accepted_it_is_not_sent_again_and_a_failed_look_up_sends_nothing()
    {
        var (_, writer) = await GymAsync();
        var phone = NewPhone();
        var body = $"Accepted {Guid.NewGuid():N}";
        fx.Twilio.FailNext(502, """{"code":20500,"message":"Bad Gateway","status":502}""", accepted: true);
        var id = await QueueAsync(writer, body, phone);
        var first = await AwaitAsync(id, m => m.Attempts == 1 && m.Status != SmsStatuses.Sending);
        Assert.Equal(SmsStatuses.Queued, first.Status);
        Assert.NotNull(first.UncertainSince);

        // Twilio's list fails too: whether the message went is still unknown, so nothing is sent.
        fx.Twilio.FailNextList(503, """{"code":20503,"message":"Service Unavailable","status":503}""");
        fx.Clock.Advance(TimeSpan.FromSeconds(30));
        var second = await AwaitAsync(id, m => m.Attempts == 2 && m.Status != SmsStatuses.Sending);
        Assert.Equal(SmsStatuses.Queued, second.Status);
        Assert.Contains("Could not look for the earlier attempt in Twilio's messages: Twilio 503 (20503)", second.Error, StringComparison.Ordinal);
        Assert.Equal(first.UncertainSince, second.UncertainSince);
        Assert.Equal(1, RequestsWith(body));

        fx.Clock.Advance(TimeSpan.FromMinutes(1));
        var sent = await AwaitStatusAsync(id, SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, sent.Status);
        Assert.Equal(3, sent.Attempts);
        Assert.Equal(Assert.Single(fx.Twilio.AcceptedWith(body)).Sid, sent.ProviderMessageId);
        Assert.Equal(1, RequestsWith(body));
        Assert.Equal(2, LookUpsOf(phone).Count);
    }

    [Fact]
    public async Task After_a_5xx_Twilio_did_not_accept_the_look_up_finds_nothing_and_it_is_sent_once_even_with_the_same_text_sent_earlier()
    {
        var (_, writer) = await GymAsync();
        var phone = NewPhone();
        var body = $"Again {Guid.NewGuid():N}";
        // The same text to the same number ten minutes earlier, sent: older than the uncertain attempt, so not its.
        var earlier = await AwaitStatusAsync(await QueueAsync(writer, body, phone), SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, earlier.Status);
        fx.Clock.Advance(TimeSpan.FromMinutes(10));

        fx.Twilio.FailNext(503, """{"code":20503,"message":"Service Unavailable","status":503}""");
        var id = await QueueAsync(writer, body, phone);
        var waiting = await AwaitAsync(id, m => m.Attempts == 1 && m.Status != SmsStatuses.Sending);
        Assert.Equal(SmsStatuses.Queued, waiting.Status);
        Assert.NotNull(waiting.UncertainSince);
        fx.Clock.Advance(TimeSpan.FromSeconds(30));
        var sent = await AwaitStatusAsync(id, SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, sent.Status);
        var accepted = fx.Twilio.AcceptedWith(body);
        Assert.Equal(new[] { sent.ProviderMessageId, earlier.ProviderMessageId }, accepted.Select(m => (string?)m.Sid));
        Assert.Equal(3, RequestsWith(body));
        Assert.Single(LookUpsOf(phone));
    }

    [Fact]
    public async Task The_look_up_does_not_take_another_messages_send_of_the_same_text_to_the_number_for_its_own()
    {
        var (_, writer) = await GymAsync();
        var phone = NewPhone();
        var body = $"Reminder: class at 7pm {Guid.NewGuid():N}";
        // A is sent and recorded at 10:00:00.
        var a = await AwaitStatusAsync(await QueueAsync(writer, body, phone), SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, a.Status);
        fx.Clock.Advance(TimeSpan.FromSeconds(30));

        // B, the same text to the same number, at 10:00:30: a 503 Twilio did not accept, so B's look-up window holds A's send.
        fx.Twilio.FailNext(503, """{"code":20503,"message":"Service Unavailable","status":503}""");
        var id = await QueueAsync(writer, body, phone);
        var waiting = await AwaitAsync(id, m => m.Attempts == 1 && m.Status != SmsStatuses.Sending);
        Assert.Equal(SmsStatuses.Queued, waiting.Status);
        Assert.NotNull(waiting.UncertainSince);
        Assert.True(a.SentAt >= waiting.UncertainSince - TwilioSmsProvider.ClockSkew);

        fx.Clock.Advance(TimeSpan.FromSeconds(30));
        var b = await AwaitStatusAsync(id, SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, b.Status);
        Assert.Single(LookUpsOf(phone));
        Assert.Equal(3, RequestsWith(body));
        Assert.Equal(new[] { b.ProviderMessageId, a.ProviderMessageId }, fx.Twilio.AcceptedWith(body).Select(m => (string?)m.Sid));
    }

    [Fact]
    public async Task A_sid_another_messages_sender_records_between_the_look_up_and_its_write_leaves_the_message_uncertain_to_be_looked_up_again()
    {
        var (gym, writer) = await GymAsync();
        var phone = NewPhone();
        var body = $"Same text {Guid.NewGuid():N}";
        // B: a 503 Twilio did not accept, so B's next attempt looks first.
        fx.Twilio.FailNext(503, """{"code":20503,"message":"Service Unavailable","status":503}""");
        var b = await QueueAsync(writer, body, phone);
        var first = await AwaitAsync(b, m => m.Attempts == 1 && m.Status != SmsStatuses.Sending);
        Assert.Equal(SmsStatuses.Queued, first.Status);
        Assert.NotNull(first.UncertainSince);

        // A: the same text to the same number, claimed by another node's sender, which has sent it and not yet recorded it.
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var a = await ClaimedAsync(gym.GymId, phone, body, now, claimedUntil: now.AddHours(1));
        using var http = new HttpClient();
        var aSent = await Provider(http).SendAsync(await MessageAsync(a), NoneRecorded, CancellationToken.None);
        Assert.True(aSent.Sent);
        var aSid = aSent.ProviderMessageId!;

        // B's look-up lists A's send and finds no message recorded with it; right then A's sender records it.
        var logStart = fx.Logs.Lines.Count;
        fx.AfterRead.Arm("sms_messages", aSid, () => fx.WithDbAsync(db => db.SmsMessages.Where(m => m.Id == a)
            .ExecuteUpdateAsync(s => s.SetProperty(m => m.Status, SmsStatuses.Sent).SetProperty(m => m.ProviderMessageId, aSid)
                .SetProperty(m => m.SentAt, now).SetProperty(m => m.ClaimedUntil, (DateTime?)null))));
        try
        {
            fx.Clock.Advance(TimeSpan.FromSeconds(30));
            var second = await AwaitAsync(b, m => m.Attempts == 2 && m.Status != SmsStatuses.Sending);
            Assert.True(fx.AfterRead.Ran.IsCompleted);
            Assert.Equal(SmsStatuses.Queued, second.Status);
            Assert.Null(second.ProviderMessageId);
            Assert.Contains("recorded for another message meanwhile", second.Error, StringComparison.Ordinal);
            Assert.Equal(first.UncertainSince, second.UncertainSince);
            Assert.Null(second.ClaimedUntil);
        }
        finally
        {
            fx.AfterRead.Disarm();
        }
        fx.Logs.AssertNoErrorsSince(logStart);
        Assert.Equal(aSid, (await MessageAsync(a)).ProviderMessageId);

        // Looked up again: A's send is A's, Twilio has none of B's, so B is sent now, once.
        fx.Clock.Advance(TimeSpan.FromMinutes(1));
        var sent = await AwaitStatusAsync(b, SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, sent.Status);
        Assert.Equal(3, sent.Attempts);
        Assert.Equal(2, LookUpsOf(phone).Count);
        Assert.Equal(new[] { sent.ProviderMessageId, aSid }, fx.Twilio.AcceptedWith(body).Select(m => (string?)m.Sid));
        Assert.Equal(3, RequestsWith(body));
        Assert.Equal(SmsStatuses.Sent, (await MessageAsync(a)).Status);
    }

    [Fact]
    public async Task A_message_Twilio_failed_is_not_taken_for_the_uncertain_attempt_and_the_message_is_sent_again()
    {
        var (_, writer) = await GymAsync();
        var phone = NewPhone();
        var body = $"Failed at Twilio {Guid.NewGuid():N}";
        fx.Twilio.FailNext(502, """{"code":20500,"message":"Bad Gateway","status":502}""", accepted: true);
        var id = await QueueAsync(writer, body, phone);
        var first = await AwaitAsync(id, m => m.Attempts == 1 && m.Status != SmsStatuses.Sending);
        Assert.Equal(SmsStatuses.Queued, first.Status);
        // Twilio accepted the first attempt and then could not send it.
        var failed = Assert.Single(fx.Twilio.AcceptedWith(body));
        failed.Status = "failed";

        fx.Clock.Advance(TimeSpan.FromSeconds(30));
        var sent = await AwaitStatusAsync(id, SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, sent.Status);
        Assert.Single(LookUpsOf(phone));
        Assert.Equal(2, RequestsWith(body));
        Assert.Equal(new[] { sent.ProviderMessageId, failed.Sid }, fx.Twilio.AcceptedWith(body).Select(m => (string?)m.Sid));
    }

    [Fact]
    public async Task Of_several_matches_the_look_up_takes_the_oldest_and_none_another_message_carries()
    {
        using var http = new HttpClient();
        var provider = Provider(http);
        var phone = NewPhone();
        var message = new SmsMessage { Id = Guid.NewGuid(), Phone = phone, Message = $"Twice {Guid.NewGuid():N}", Status = SmsStatuses.Sending };
        var since = fx.Clock.GetUtcNow().UtcDateTime;
        foreach (var _ in new[] { 1, 2, 3 })
        {
            // Three uncertain attempts that Twilio each accepted, ten seconds apart.
            fx.Twilio.FailNext(500, """{"code":20500,"message":"Internal Server Error","status":500}""", accepted: true);
            Assert.True((await provider.SendAsync(message, NoneRecorded, CancellationToken.None)).Uncertain);
            fx.Clock.Advance(TimeSpan.FromSeconds(10));
        }
        var accepted = fx.Twilio.AcceptedWith(message.Message);
        Assert.Equal(3, accepted.Count);
        message.UncertainSince = since;

        var oldest = await provider.SendAsync(message, NoneRecorded, CancellationToken.None);
        Assert.True(oldest.Sent);
        Assert.Equal(accepted[2].Sid, oldest.ProviderMessageId);

        IReadOnlyCollection<string>? asked = null;
        var next = await provider.SendAsync(message, (ids, _) =>
        {
            asked = ids;
            return Task.FromResult<IReadOnlySet<string>>(new HashSet<string> { accepted[2].Sid });
        }, CancellationToken.None);
        Assert.True(next.Sent);
        Assert.Equal(accepted[1].Sid, next.ProviderMessageId);
        Assert.Equal(accepted.Select(m => m.Sid).Order(), asked!.Order());
        Assert.Equal(3, fx.Twilio.Requests.Count(r => r.Form.GetValueOrDefault("To") == phone));
    }

    [Fact]
    public async Task With_a_messaging_service_the_look_up_names_no_sender_and_finds_the_message_sent_from_its_pool()
    {
        using var http = new HttpClient();
        var provider = Provider(http, from: "MG00000000000000000000000000000001");
        var phone = NewPhone();
        var message = new SmsMessage { Id = Guid.NewGuid(), Phone = phone, Message = $"Pool {Guid.NewGuid():N}", Status = SmsStatuses.Sending };

        fx.Twilio.FailNext(500, """{"code":20500,"message":"Internal Server Error","status":500}""", accepted: true);
        var first = await provider.SendAsync(message, NoneRecorded, CancellationToken.None);
        Assert.True(first.Uncertain);
        Assert.Equal("MG00000000000000000000000000000001", Assert.Single(fx.Twilio.Requests, r => r.Form.GetValueOrDefault("To") == phone).Form["MessagingServiceSid"]);

        message.UncertainSince = fx.Clock.GetUtcNow().UtcDateTime;
        var second = await provider.SendAsync(message, NoneRecorded, CancellationToken.None);
        Assert.True(second.Sent);
        var accepted = Assert.Single(fx.Twilio.AcceptedWith(message.Message));
        Assert.Equal(TwilioStandIn.ServiceNumber, accepted.From);
        Assert.Equal(accepted.Sid, second.ProviderMessageId);
        Assert.False(Assert.Single(LookUpsOf(phone)).Form.ContainsKey("From"));
        Assert.Single(fx.Twilio.Requests, r => r.Form.GetValueOrDefault("To") == phone);
    }

    [Fact]
    public async Task A_permanent_refusal_fails_the_message_with_twilios_error_and_the_tile_shows_it()
    {
        var (gym, writer) = await GymAsync();
        fx.Twilio.FailNext(400, """{"code":21211,"message":"The 'To' number +15551234567 is not a valid phone number.","status":400}""");
        var id = await QueueAsync(writer, $"Bad {Guid.NewGuid():N}");
        var failed = await AwaitStatusAsync(id, SmsStatuses.Failed, SmsStatuses.Sent);
        Assert.Equal(SmsStatuses.Failed, failed.Status);
        Assert.Contains("21211", failed.Error, StringComparison.Ordinal);
        Assert.Equal(1, failed.Attempts);
        // The owner's data, recorded on the message: not a fault of the server's.
        Assert.Contains($"Information {ProviderCategory}: Twilio refused SMS {id} with status 400 ", fx.Logs.Lines);
        var tile = await TileAsync(gym.GymId);
        Assert.Equal(IntegrationState.Error, tile.State);
        Assert.Contains("21211", tile.Reason, StringComparison.Ordinal);
        // The SMS page says what its tile says, not merely that the server has a provider.
        using var browser = new Gymwire.Tests.Dashboard.DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var page = WebUtility.HtmlDecode(await browser.GetPageAsync("/settings/integrations/sms"));
        Assert.Contains("<span class=\"badge error\">Error</span>", page, StringComparison.Ordinal);
        Assert.DoesNotContain("<span class=\"badge connected\">Connected</span>", page, StringComparison.Ordinal);
        Assert.Contains($"<p id=\"integration-status\">{tile.Reason}</p>", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rate_limited_sends_give_up_after_max_attempts()
    {
        var (_, writer) = await GymAsync();
        for (var i = 0; i < 3; i++)
        {
            fx.Twilio.FailNext(429, """{"code":20429,"message":"Too Many Requests","status":429}""");
        }
        var id = await QueueAsync(writer, $"Busy {Guid.NewGuid():N}");
        SmsMessage message;
        var attempts = 0;
        do
        {
            // Let each attempt finish before moving the clock past its backoff.
            message = await AwaitAsync(id, m => m.Attempts > attempts && m.Status != SmsStatuses.Sending);
            attempts = message.Attempts;
            fx.Clock.Advance(TimeSpan.FromMinutes(5));
        }
        while (message.Status == SmsStatuses.Queued);
        Assert.Equal(SmsStatuses.Failed, message.Status);
        Assert.Equal(3, message.Attempts);
        Assert.Contains("Attempt 3", message.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Refused_credentials_keep_the_message_queued_past_max_attempts_and_it_is_sent_once_they_work()
    {
        var (_, writer) = await GymAsync();
        const int refusals = 4; // more than the fixture's Sms:MaxAttempts
        for (var i = 0; i < refusals; i++)
        {
            fx.Twilio.FailNext(i % 2 == 0 ? 401 : 403, """{"code":20003,"message":"Authenticate","status":401}""");
        }
        var body = $"Creds {Guid.NewGuid():N}";
        var id = await QueueAsync(writer, body);
        var attempts = 0;
        while (attempts < refusals)
        {
            var message = await AwaitAsync(id, m => m.Attempts > attempts && m.Status != SmsStatuses.Sending);
            attempts = message.Attempts;
            Assert.Equal(SmsStatuses.Queued, message.Status);
            Assert.Contains("AuthToken", message.Error, StringComparison.Ordinal);
            fx.Clock.Advance(TimeSpan.FromHours(1));
        }
        var sent = await AwaitStatusAsync(id, SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, sent.Status);
        Assert.Equal(refusals + 1, RequestsWith(body));
        // The server's configuration, failing every message alike, for the operator to fix.
        Assert.Contains($"Warning {ProviderCategory}: Twilio refused SMS {id} with status 401 ", fx.Logs.Lines);
        Assert.Contains($"Warning {ProviderCategory}: Twilio refused SMS {id} with status 403 ", fx.Logs.Lines);
    }

    [Fact]
    public async Task A_message_interrupted_mid_send_is_marked_for_review_and_never_resent()
    {
        var (gym, _) = await GymAsync();
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var body = $"Interrupted {Guid.NewGuid():N}";
        var phone = NewPhone();
        // As a sender that died between claiming and recording leaves it.
        var id = await ClaimedAsync(gym.GymId, phone, body, now, claimedUntil: now.AddMinutes(1));
        await fx.RestartAsync();
        fx.Clock.Advance(TimeSpan.FromMinutes(2));
        var reviewed = await AwaitStatusAsync(id, SmsStatuses.Failed, SmsStatuses.Sent, SmsStatuses.Queued);
        Assert.Equal(SmsStatuses.Failed, reviewed.Status);
        Assert.Equal(SmsSender.InterruptedError, reviewed.Error);
        Assert.Equal(now, reviewed.UncertainSince);
        Assert.Equal(0, RequestsWith(body));

        // The owner queues it again: Twilio's list shows it was not sent, so it is sent now.
        var retried = await (await gym.Owner().PostAsync($"/api/gym/sms/{id}/retry", null)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("queued", retried.GetProperty("status").GetString());
        Assert.Equal(SmsStatuses.Sent, (await AwaitStatusAsync(id, SmsStatuses.Sent, SmsStatuses.Failed)).Status);
        Assert.Equal(1, RequestsWith(body));
        Assert.Single(LookUpsOf(phone));
        await (await gym.Owner().PostAsync($"/api/gym/sms/{id}/retry", null)).AssertErrorAsync(HttpStatusCode.Conflict);
        var other = await fx.CreateGymAsync();
        await (await other.Owner().PostAsync($"/api/gym/sms/{id}/retry", null)).AssertErrorAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Shutdown_right_after_a_message_is_claimed_still_sends_and_records_it()
    {
        var (gym, _) = await GymAsync();
        var body = $"Claimed at shutdown {Guid.NewGuid():N}";
        var now = fx.Clock.GetUtcNow();
        var id = await fx.WithDbAsync(async db =>
        {
            // Due only on the clock of the sender below, never on the hosted sender's, so the pass below claims it.
            var m = SmsService.Queue(db, gym.GymId, new SendSmsRequest("+15551234567", body), now.UtcDateTime);
            m.NextAttemptAt = now.UtcDateTime.AddDays(1);
            await db.SaveChangesAsync();
            return m.Id;
        });
        using var stopping = new CancellationTokenSource();
        fx.AfterUpdate.Arm("sms_messages", id, stopping.Cancel);
        var sender = ActivatorUtilities.CreateInstance<SmsSender>(fx.Services, new FakeTimeProvider(now.AddDays(2)));
        try
        {
            await sender.RunOnceAsync(stopping.Token);
        }
        catch (OperationCanceledException)
        {
            // The pass stops at its next step; the claimed message must not be left behind.
        }
        finally
        {
            fx.AfterUpdate.Disarm();
        }
        Assert.True(stopping.IsCancellationRequested);
        var message = await MessageAsync(id);
        Assert.Equal(SmsStatuses.Sent, message.Status);
        Assert.Null(message.ClaimedUntil);
        Assert.Equal(1, RequestsWith(body));
    }

    [Fact]
    public async Task The_senders_claims_and_records_wait_their_turn_at_the_write_gate_during_a_long_write()
    {
        var (gym, _) = await GymAsync();
        var body = $"Gated {Guid.NewGuid():N}";
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        // A message due in a minute, and another that the long writes change meanwhile.
        var (id, other) = await fx.WithDbAsync(async db =>
        {
            var m = SmsService.Queue(db, gym.GymId, new SendSmsRequest("+15551234567", body), now);
            m.NextAttemptAt = now.AddMinutes(1);
            var o = SmsService.Queue(db, gym.GymId, new SendSmsRequest("+15551234567", $"Other {Guid.NewGuid():N}"), now);
            o.Status = SmsStatuses.Failed;
            await db.SaveChangesAsync();
            return (m.Id, o.Id);
        });
        fx.Twilio.HoldAnswers();
        try
        {
            // The pass that comes due (its sweep, the claim) while another writer holds the gate.
            await DuringLongWriteAsync(other, () =>
            {
                fx.Clock.Advance(TimeSpan.FromMinutes(1));
                fx.Services.GetRequiredService<SmsSignal>().Notify();
                return fx.Twilio.Held;
            });
            await fx.Twilio.Held.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(SmsStatuses.Sending, (await MessageAsync(id)).Status);

            // Twilio's answer, to be recorded while another writer holds the gate.
            await DuringLongWriteAsync(other, () =>
            {
                fx.Twilio.ReleaseAnswers();
                return AwaitStatusAsync(id, SmsStatuses.Sent, SmsStatuses.Failed);
            });
        }
        finally
        {
            fx.Twilio.ReleaseAnswers();
        }
        var sent = await AwaitStatusAsync(id, SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, sent.Status);
        Assert.Equal(1, RequestsWith(body));
        Assert.Equal("a long write", (await MessageAsync(other)).Error);
    }

    /// <summary>
    /// A long write, as the gate's holders make them (the gate, then a write transaction: on SQLite the database's one
    /// write lock), during <paramref name="step"/>. On SQLite the sender must not start a write until it commits (it
    /// would wait in SQLite's busy handler, holding a thread-pool thread; waiting at the gate gives no sign, so this
    /// watches for the write that must not come, for a while); on PostgreSQL a write to another row holds nothing up.
    /// </summary>
    private async Task DuringLongWriteAsync(Guid other, Func<Task> step)
    {
        await using var scope = fx.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var held = await fx.Services.GetRequiredService<SqliteWriteGate>().EnterAsync(db, CancellationToken.None);
        var tx = await db.Database.BeginTransactionAsync();
        try
        {
            await db.SmsMessages.Where(m => m.Id == other).ExecuteUpdateAsync(s => s.SetProperty(m => m.Error, "a long write"));
            fx.UpdateWatch.Arm("sms_messages", []);
            var running = step();
            if (fx.Store == Store.Sqlite)
            {
                await Task.WhenAny(fx.UpdateWatch.Began, Task.Delay(TimeSpan.FromSeconds(2)));
                Assert.False(fx.UpdateWatch.Began.IsCompleted, "the SMS sender wrote to SQLite while another writer held the gate");
                Assert.False(running.IsCompleted);
            }
            else
            {
                await running.WaitAsync(TimeSpan.FromSeconds(30));
            }
        }
        finally
        {
            fx.UpdateWatch.Disarm();
            await tx.CommitAsync();
            await tx.DisposeAsync();
            held.Dispose();
        }
    }

    [Fact]
    public async Task Two_concurrent_retries_of_a_failed_message_queue_it_once_and_it_is_sent_once()
    {
        var (gym, _) = await GymAsync();
        var body = $"Double click {Guid.NewGuid():N}";
        var id = await fx.WithDbAsync(async db =>
        {
            var m = SmsService.Queue(db, gym.GymId, new SendSmsRequest("+15551234567", body), fx.Clock.GetUtcNow().UtcDateTime);
            m.Status = SmsStatuses.Failed;
            m.Attempts = 1;
            m.Error = "Attempt 1: Twilio 400";
            await db.SaveChangesAsync();
            return m.Id;
        });
        // Both requests read the failed message before either writes, and the provider is slow: the first retry's
        // send is still in flight when the second retry would queue the message again.
        fx.ReadBarrier.Arm("sms_messages", id, readers: 2);
        fx.Twilio.HoldAnswers();
        try
        {
            var responses = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => gym.Owner().PostAsync($"/api/gym/sms/{id}/retry", null)));
            var won = Assert.Single(responses, r => r.StatusCode == HttpStatusCode.OK);
            Assert.Equal("queued", (await won.AssertStatusAsync(HttpStatusCode.OK)).GetProperty("status").GetString());
            var lost = Assert.Single(responses, r => r != won);
            Assert.Contains("Only failed or undelivered messages can be retried", await lost.AssertErrorAsync(HttpStatusCode.Conflict), StringComparison.Ordinal);
            fx.Services.GetRequiredService<SmsSignal>().Notify();
            await fx.Twilio.Held.WaitAsync(TimeSpan.FromSeconds(20));
        }
        finally
        {
            fx.Twilio.ReleaseAnswers();
        }
        var sent = await AwaitStatusAsync(id, SmsStatuses.Sent, SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, sent.Status);
        Assert.Equal(1, sent.Attempts);
        Assert.Equal(1, RequestsWith(body));
    }
}

/// <summary>Without a provider, messages stay queued (never dropped) and the tile says so; with <c>log</c> they are recorded, not delivered.</summary>
public sealed class SmsProviderConfigurationTests
{
    public sealed class LogGymwire() : GymwireFixture(Store.Sqlite)
    {
        protected override IEnumerable<KeyValuePair<string, string>> Settings() => [new("Sms:Provider", "log")];
    }

    [Fact]
    public async Task Without_a_provider_messages_stay_queued_and_the_tile_is_not_connected()
    {
        var fx = new SqliteGymwire();
        await fx.InitializeAsync();
        try
        {
            var gym = await fx.CreateGymAsync();
            var id = await fx.WithDbAsync(async db =>
            {
                var m = SmsService.Queue(db, gym.GymId, new SendSmsRequest("+15551234567", "hi"), fx.Clock.GetUtcNow().UtcDateTime);
                await db.SaveChangesAsync();
                return m.Id;
            });
            fx.Clock.Advance(TimeSpan.FromHours(1));
            Assert.Equal(SmsStatuses.Queued, await fx.WithDbAsync(db => db.SmsMessages.Where(m => m.Id == id).Select(m => m.Status).SingleAsync()));
            await using var scope = fx.Services.CreateAsyncScope();
            var tiles = scope.ServiceProvider.GetRequiredService<IntegrationTiles>();
            var status = await tiles.StatusAsync(tiles.Find("sms")!, gym.GymId, CancellationToken.None);
            Assert.Equal(IntegrationState.NotConnected, status.State);
            Assert.Contains("1 message(s) are queued", status.Reason, StringComparison.Ordinal);
        }
        finally
        {
            await fx.DisposeAsync();
        }
    }

    [Fact]
    public async Task The_log_provider_records_messages_as_sent_without_logging_the_number_or_body()
    {
        var fx = new LogGymwire();
        await fx.InitializeAsync();
        try
        {
            var gym = await fx.CreateGymAsync();
            var id = await fx.WithDbAsync(async db =>
            {
                var m = SmsService.Queue(db, gym.GymId, new SendSmsRequest("+15557654321", "secret body"), fx.Clock.GetUtcNow().UtcDateTime);
                await db.SaveChangesAsync();
                return m.Id;
            });
            var deadline = DateTime.UtcNow.AddSeconds(20);
            SmsMessage message;
            while ((message = await fx.WithDbAsync(db => db.SmsMessages.AsNoTracking().SingleAsync(m => m.Id == id))).Status != SmsStatuses.Sent)
            {
                Assert.True(DateTime.UtcNow < deadline, "the log provider did not record the message");
                fx.Services.GetRequiredService<SmsSignal>().Notify();
                await Task.Delay(20);
            }
            Assert.StartsWith("log_", message.ProviderMessageId, StringComparison.Ordinal);
            Assert.Contains(fx.Logs.Lines, l => l.Contains("+15…21", StringComparison.Ordinal));
            Assert.DoesNotContain(fx.Logs.Lines, l => l.Contains("+15557654321", StringComparison.Ordinal) || l.Contains("secret body", StringComparison.Ordinal));
        }
        finally
        {
            await fx.DisposeAsync();
        }
    }
}

/// <summary>Once armed, runs an action after the first update of one table that carries one parameter value (a row's id).</summary>
public sealed class AfterUpdate : DbCommandInterceptor
{
    private readonly Lock _lock = new();
    private string _table = "";
    private object? _value;
    private Action? _action;

    public void Arm(string table, object value, Action action)
    {
        lock (_lock)
        {
            (_table, _value, _action) = (table, value, action);
        }
    }

    public void Disarm()
    {
        lock (_lock)
        {
            _action = null;
        }
    }

    public override ValueTask<int> NonQueryExecutedAsync(
        DbCommand command, CommandExecutedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        Action? action;
        lock (_lock)
        {
            action = _action;
            if (action is null || !command.CommandText.Contains("UPDATE", StringComparison.OrdinalIgnoreCase)
                || !command.CommandText.Contains(_table, StringComparison.Ordinal)
                || !command.Parameters.Cast<DbParameter>().Any(p => Equals(p.Value, _value)))
            {
                return ValueTask.FromResult(result);
            }
            _action = null;
        }
        action();
        return ValueTask.FromResult(result);
    }
}

/// <summary>
/// Once armed, runs a write after the first read (SELECT) of one table that carries one text among its parameters,
/// alone or in a list parameter (a look-up's provider ids): a concurrent writer that acts right after that read,
/// before the reader writes, the interleaving a lucky schedule gives only sometimes.
/// </summary>
public sealed class AfterRead : DbCommandInterceptor
{
    private readonly Lock _lock = new();
    private string _table = "";
    private string _text = "";
    private Func<Task>? _write;
    private TaskCompletionSource _ran = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes once the armed write ran.</summary>
    public Task Ran => _ran.Task;

    public void Arm(string table, string text, Func<Task> write)
    {
        lock (_lock)
        {
            (_table, _text, _write) = (table, text, write);
            _ran = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    public void Disarm()
    {
        lock (_lock)
        {
            _write = null;
        }
    }

    public override async ValueTask<DbDataReader> ReaderExecutedAsync(
        DbCommand command, CommandExecutedEventData eventData, DbDataReader result, CancellationToken cancellationToken = default)
    {
        Func<Task>? write;
        lock (_lock)
        {
            write = _write;
            if (write is null || !command.CommandText.TrimStart().StartsWith("SELECT", StringComparison.OrdinalIgnoreCase)
                || !command.CommandText.Contains(_table, StringComparison.Ordinal) || !command.Parameters.Cast<DbParameter>().Any(Carries))
            {
                return result;
            }
            _write = null;
        }
        await write();
        lock (_lock)
        {
            _ran.TrySetResult();
        }
        return result;
    }

    // SQLite binds a list as one JSON text, PostgreSQL as an array.
    private bool Carries(DbParameter p) => p.Value switch
    {
        string text => text.Contains(_text, StringComparison.Ordinal),
        IEnumerable<string> list => list.Contains(_text, StringComparer.Ordinal),
        _ => false,
    };
}
