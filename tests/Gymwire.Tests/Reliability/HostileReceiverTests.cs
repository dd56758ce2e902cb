using System.Net;
using System.Net.Sockets;
using System.Text;
using Gymwire.Features.Events;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Reliability;

/// <summary>
/// R3: endpoints that never answer, trickle a byte a second, return 1 GiB, redirect to the metadata address,
/// or answer 410 share the workers with a healthy endpoint. Each is cut off or handled as the Webhooks issue
/// says, and the healthy endpoint still gets every event while they misbehave (bounded per-endpoint concurrency).
/// </summary>
public abstract class HostileReceiverTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteShortTimeout f) : HostileReceiverTests(f), IClassFixture<SqliteShortTimeout>;
    public sealed class Postgres(PostgresShortTimeout f) : HostileReceiverTests(f), IClassFixture<PostgresShortTimeout>;

    [Fact]
    public async Task Hostile_endpoints_are_cut_off_and_do_not_starve_a_healthy_one()
    {
        const int events = 120;
        var gym = await fx.CreateGymAsync();
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/hang", new Reply { Hang = true });
        receiver.On("/trickle", new Reply { Trickle = true });
        receiver.On("/huge", new Reply { StreamBytes = 1L << 30 });
        receiver.On("/redirect", new Reply(302) { Location = "http://169.254.169.254/latest/meta-data/" });
        receiver.On("/gone", new Reply(410));
        var hooks = new Dictionary<string, CreatedHook>();
        foreach (var path in new[] { "/hang", "/trickle", "/huge", "/redirect", "/gone", "/healthy" })
        {
            hooks[path] = await gym.CreateWebhookAsync(receiver.Url(path));
        }

        await fx.WithDbAsync(async db =>
        {
            var now = fx.Clock.GetUtcNow().UtcDateTime;
            for (var i = 0; i < events; i++)
            {
                db.AddEvent(gym.GymId, EventCatalog.LeadCreated, new { lead_id = Guid.NewGuid(), first_name = $"L{i}", last_name = (string?)null, source = "r3" }, now);
            }
            return await db.SaveChangesAsync();
        });

        // The healthy endpoint gets everything while the others hold their (capped) slots.
        await receiver.WaitForAsync("/healthy", events, TimeSpan.FromSeconds(90));

        // 410: the subscription is deactivated after its first answer, so it saw one request only... or a few in flight.
        await Eventually.TrueAsync(async () => !await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hooks["/gone"].Id).Select(s => s.IsActive).FirstAsync()),
            TimeSpan.FromSeconds(30), "410 deactivates the subscription");
        Assert.True(receiver.At("/gone").Count <= 8, $"{receiver.At("/gone").Count} requests to a 410 endpoint");

        // 302 to an internal address: a failed attempt, and the target is never contacted (it is not followed).
        var redirected = await fx.WithDbAsync(db => db.WebhookAttempts.Where(a => a.GymId == gym.GymId && a.StatusCode == 302).CountAsync());
        Assert.True(redirected > 0);
        Assert.Equal(0, await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.SubscriptionId == hooks["/redirect"].Id && d.Status == "delivered")));

        // 1 GiB: what Gymwire read and stored stops at 64 KiB; the receiver was cut off long before 1 GiB.
        await Eventually.TrueAsync(async () => await fx.WithDbAsync(db => db.WebhookAttempts.AnyAsync(a => a.GymId == gym.GymId && a.ResponseBodyTruncated)),
            TimeSpan.FromSeconds(60), "a truncated attempt for the 1 GiB endpoint");
        var longest = await fx.WithDbAsync(db => db.WebhookAttempts.Where(a => a.GymId == gym.GymId && a.ResponseBody != null).MaxAsync(a => a.ResponseBody!.Length));
        Assert.True(longest <= 64 * 1024, $"stored a {longest}-character body excerpt");
        Assert.True(receiver.BytesStreamed < 1L << 30, "the 1 GiB body was read to the end");

        // Never-answering and trickling endpoints fail by the 2 s timeout instead of holding a slot forever.
        foreach (var path in new[] { "/hang", "/trickle" })
        {
            var subscription = hooks[path].Id;
            await Eventually.TrueAsync(async () => await fx.WithDbAsync(db => db.WebhookAttempts.AnyAsync(a => a.GymId == gym.GymId && a.Error != null && a.DurationMs < 10_000 &&
                    db.WebhookDeliveries.Any(d => d.Id == a.DeliveryId && d.SubscriptionId == subscription))),
                TimeSpan.FromSeconds(60), $"a timed-out attempt for {path}");
        }
    }

    [Fact]
    public async Task A_malformed_answer_is_recorded_as_a_failed_attempt_that_fits_its_row()
    {
        // Not HTTP: a status line without a reason phrase, followed by 3,000 characters, which .NET quotes in its error.
        await using var receiver = await RawReceiver.StartAsync("HTTP/1.1 200" + new string('x', 3000) + "\r\n\r\n");
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync($"http://127.0.0.1:{receiver.Port}/malformed");
        await fx.WithDbAsync(db =>
        {
            db.AddEvent(gym.GymId, EventCatalog.LeadCreated, new { lead_id = Guid.NewGuid(), first_name = "M", last_name = (string?)null, source = "r3" }, fx.Clock.GetUtcNow().UtcDateTime);
            return db.SaveChangesAsync();
        });

        // Recorded once, as a failure with the receiver's text cut to the column, and the delivery scheduled for a retry.
        await Eventually.TrueAsync(() => fx.WithDbAsync(db => db.WebhookDeliveries.AnyAsync(d => d.SubscriptionId == hook.Id && d.Status == DeliveryStatus.Retrying)),
            TimeSpan.FromSeconds(30), "the malformed answer recorded as a failed attempt");
        var attempt = await fx.WithDbAsync(db => db.WebhookAttempts.SingleAsync(a => a.GymId == gym.GymId));
        Assert.Null(attempt.StatusCode);
        Assert.NotNull(attempt.Error);
        Assert.True(attempt.Error.Length <= WebhookAttempt.MaxErrorLength, $"a {attempt.Error.Length}-character error");
        Assert.Equal(1, receiver.Connections);
    }

    [Fact]
    public void Kept_response_headers_fit_their_column_however_much_their_values_escape()
    {
        using var response = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable) { Content = new ByteArrayContent([]) };
        // Quotes and backslashes escape to two characters each, C1 control characters to six.
        response.Headers.TryAddWithoutValidation("Server", new string('"', 600));
        response.Headers.TryAddWithoutValidation("Location", new string('\\', 600));
        response.Headers.TryAddWithoutValidation("Retry-After", new string('\u0085', 600));
        response.Headers.TryAddWithoutValidation("Date", new string('"', 600));
        response.Content.Headers.TryAddWithoutValidation("Content-Type", new string('\u0090', 600));
        var json = Attempt.SelectHeaders(response);
        Assert.True(json.Length <= WebhookAttempt.MaxResponseHeadersLength, $"{json.Length} characters of headers");
        var kept = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(json)!;
        Assert.Equal(["content-type", "date", "location", "retry-after", "server"], kept.Keys.Order());
        Assert.All(kept.Values, v => Assert.InRange(v.Length, 100, 500));

        // Ordinary headers are kept whole.
        using var plain = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent([]) };
        plain.Headers.TryAddWithoutValidation("Server", "nginx/1.27.0");
        Assert.Equal("""{"server":"nginx/1.27.0"}""", Attempt.SelectHeaders(plain));
    }

    /// <summary>A TCP listener on loopback that answers every request with the same bytes, whatever they are, and closes.</summary>
    private sealed class RawReceiver : IAsyncDisposable
    {
        private readonly TcpListener _listener;
        private readonly byte[] _answer;
        private readonly CancellationTokenSource _stop = new();
        private Task _accepting = Task.CompletedTask;
        private int _connections;

        private RawReceiver(TcpListener listener, byte[] answer)
        {
            _listener = listener;
            _answer = answer;
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public int Connections => Volatile.Read(ref _connections);

        public static Task<RawReceiver> StartAsync(string answer)
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var receiver = new RawReceiver(listener, Encoding.Latin1.GetBytes(answer));
            receiver._accepting = receiver.AcceptAsync();
            return Task.FromResult(receiver);
        }

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    Interlocked.Increment(ref _connections);
                    _ = AnswerAsync(client);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private async Task AnswerAsync(TcpClient client)
        {
            using (client)
            {
                var stream = client.GetStream();
                // Reads the request's head (the body may follow; it is not needed to answer).
                var buffer = new byte[64 * 1024];
                var read = 0;
                while (read < buffer.Length && !Encoding.Latin1.GetString(buffer, 0, read).Contains("\r\n\r\n", StringComparison.Ordinal))
                {
                    var n = await stream.ReadAsync(buffer.AsMemory(read), _stop.Token);
                    if (n == 0)
                    {
                        return;
                    }
                    read += n;
                }
                await stream.WriteAsync(_answer, _stop.Token);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _accepting;
            _stop.Dispose();
        }
    }
}
