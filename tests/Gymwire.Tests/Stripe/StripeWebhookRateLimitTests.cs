using System.Net;
using System.Net.Http.Json;
using System.Text;
using Gymwire.Features.Stripe;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Stripe;

/// <summary>
/// Stripe's webhook URLs are anonymous, so rejected posts are limited per client address (here 5 a minute, behind a
/// trusted loopback proxy so that each post can name its address with X-Forwarded-For).
/// </summary>
public abstract class StripeWebhookRateLimitTests(GymwireFixture fx)
{
    public const int Limit = 5;

    private static readonly KeyValuePair<string, string>[] LimitedSettings =
    [
        new("RateLimiting:StripeWebhooks:PermitLimit", Limit.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        new("ForwardedHeaders:TrustedProxies:0", "127.0.0.1"),
    ];

    public sealed class SqliteLimited() : GymwireFixture(Store.Sqlite)
    {
        protected override IEnumerable<KeyValuePair<string, string>> Settings() => LimitedSettings;
    }

    public sealed class PostgresLimited() : GymwireFixture(Store.Postgres)
    {
        protected override IEnumerable<KeyValuePair<string, string>> Settings() => LimitedSettings;
    }

    public sealed class Sqlite(SqliteLimited f) : StripeWebhookRateLimitTests(f), IClassFixture<SqliteLimited>;
    public sealed class Postgres(PostgresLimited f) : StripeWebhookRateLimitTests(f), IClassFixture<PostgresLimited>;

    private Task<HttpResponseMessage> PostAsync(string url, string payload, string signature, string from)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(payload, Encoding.UTF8, "application/json") };
        request.Headers.TryAddWithoutValidation("Stripe-Signature", signature);
        request.Headers.Add("X-Forwarded-For", from);
        return fx.Client().SendAsync(request);
    }

    [Fact]
    public async Task Posts_past_the_limit_from_one_address_get_429_before_any_signature_is_checked_and_other_addresses_go_on()
    {
        var gym = await fx.CreateGymAsync();
        var secret = StripeSigner.NewSecret();
        await (await gym.Owner().PutAsJsonAsync("/api/gym/integrations/stripe", new { endpoint_secret = secret })).AssertStatusAsync(HttpStatusCode.OK);
        var payload = StripeSigner.Event("evt_limited", "invoice.paid", StripeSigner.PaidInvoice("in_limited", "cus_l", "nobody@example.com", 100, "pi_limited"), fx.Clock.GetUtcNow());
        var forged = StripeSigner.Sign(payload, StripeSigner.NewSecret(), fx.Clock.GetUtcNow());
        const string prober = "203.0.113.7";

        // Someone tries signatures against every gym's secret through the URL without a gym.
        for (var i = 0; i < Limit; i++)
        {
            await (await PostAsync(StripeEndpoints.WebhookPath, payload, forged, prober)).AssertErrorAsync(HttpStatusCode.BadRequest);
        }
        var limited = await PostAsync(StripeEndpoints.WebhookPath, payload, StripeSigner.Sign(payload, secret, fx.Clock.GetUtcNow()), prober);
        var message = await limited.AssertErrorAsync(HttpStatusCode.TooManyRequests);
        var retryAfter = int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 60);
        // The message names the limit with its configured figure.
        Assert.Equal($"Rate limit exceeded: {Limit} rejected requests a minute per client address for Stripe webhooks; retry after {retryAfter} seconds", message);
        // The gym's own URL counts for that address too; the signed event was not looked at.
        await (await PostAsync($"{StripeEndpoints.WebhookPath}/{gym.GymId}", payload, StripeSigner.Sign(payload, secret, fx.Clock.GetUtcNow()), prober))
            .AssertErrorAsync(HttpStatusCode.TooManyRequests);
        Assert.Equal(0, await fx.WithDbAsync(db => db.StripeEvents.CountAsync(e => e.GymId == gym.GymId)));

        // Stripe, from its own address, is not held up.
        var ack = await (await PostAsync($"{StripeEndpoints.WebhookPath}/{gym.GymId}", payload, StripeSigner.Sign(payload, secret, fx.Clock.GetUtcNow()), "198.51.100.20"))
            .AssertStatusAsync(HttpStatusCode.OK);
        Assert.False(ack.GetProperty("duplicate").GetBoolean());

        // A window later the address is admitted again.
        fx.Clock.Advance(TimeSpan.FromMinutes(1));
        var again = await (await PostAsync($"{StripeEndpoints.WebhookPath}/{gym.GymId}", payload, StripeSigner.Sign(payload, secret, fx.Clock.GetUtcNow()), prober))
            .AssertStatusAsync(HttpStatusCode.OK);
        Assert.True(again.GetProperty("duplicate").GetBoolean());
    }

    [Fact]
    public async Task Accepted_posts_never_use_up_an_addresss_limit_and_rejected_ones_do()
    {
        var gym = await fx.CreateGymAsync();
        var secret = StripeSigner.NewSecret();
        await (await gym.Owner().PutAsJsonAsync("/api/gym/integrations/stripe", new { endpoint_secret = secret })).AssertStatusAsync(HttpStatusCode.OK);
        // One address for Stripe and a forger, as behind a proxy whose clients all share its address.
        const string shared = "203.0.113.9";
        string Event(int i) => StripeSigner.Event($"evt_shared_{i}", "invoice.paid",
            StripeSigner.PaidInvoice($"in_shared_{i}", "cus_s", "nobody@example.com", 100, $"pi_shared_{i}"), fx.Clock.GetUtcNow());

        for (var i = 0; i < Limit - 1; i++)
        {
            var payload = Event(-1 - i);
            await (await PostAsync(StripeEndpoints.WebhookPath, payload, StripeSigner.Sign(payload, StripeSigner.NewSecret(), fx.Clock.GetUtcNow()), shared))
                .AssertErrorAsync(HttpStatusCode.BadRequest);
        }
        // Stripe's deliveries, three times the limit of them, through both URLs: every one is accepted.
        for (var i = 0; i < 3 * Limit; i++)
        {
            var payload = Event(i);
            var url = i % 2 == 0 ? $"{StripeEndpoints.WebhookPath}/{gym.GymId}" : StripeEndpoints.WebhookPath;
            var ack = await (await PostAsync(url, payload, StripeSigner.Sign(payload, secret, fx.Clock.GetUtcNow()), shared)).AssertStatusAsync(HttpStatusCode.OK);
            Assert.False(ack.GetProperty("duplicate").GetBoolean());
        }
        Assert.Equal(3 * Limit, await fx.WithDbAsync(db => db.StripeEvents.CountAsync(e => e.GymId == gym.GymId)));

        // The forger's next post is its fifth: refused for its signature. Past that, 429 for anything from the address.
        var forged = Event(-Limit);
        await (await PostAsync(StripeEndpoints.WebhookPath, forged, StripeSigner.Sign(forged, StripeSigner.NewSecret(), fx.Clock.GetUtcNow()), shared))
            .AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await PostAsync(StripeEndpoints.WebhookPath, forged, StripeSigner.Sign(forged, StripeSigner.NewSecret(), fx.Clock.GetUtcNow()), shared))
            .AssertErrorAsync(HttpStatusCode.TooManyRequests);
        var late = Event(3 * Limit);
        await (await PostAsync($"{StripeEndpoints.WebhookPath}/{gym.GymId}", late, StripeSigner.Sign(late, secret, fx.Clock.GetUtcNow()), shared))
            .AssertErrorAsync(HttpStatusCode.TooManyRequests);
        Assert.Equal(3 * Limit, await fx.WithDbAsync(db => db.StripeEvents.CountAsync(e => e.GymId == gym.GymId)));
    }
}
