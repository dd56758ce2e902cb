using System.Net;
using System.Net.Http.Json;
using System.Text;
using Gymwire.Features.Stripe;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Stripe;

/// <summary>
/// Stripe's webhook URLs are anonymous, so posts are limited per client address (here 5 a minute, behind a trusted
/// loopback proxy so that each post can name its address with X-Forwarded-For).
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
        Assert.Contains("Rate limit exceeded", await limited.AssertErrorAsync(HttpStatusCode.TooManyRequests), StringComparison.Ordinal);
        Assert.InRange(int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture), 1, 60);
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
}
