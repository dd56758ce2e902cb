using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Gymwire.Features.Dashboard.Integrations;
using Gymwire.Features.Stripe;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Stripe;

public abstract class StripeWebhookTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : StripeWebhookTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : StripeWebhookTests(f), IClassFixture<PostgresGymwire>;

    private async Task<(TestGym Gym, string Secret)> ConnectedGymAsync()
    {
        var gym = await fx.CreateGymAsync();
        var secret = StripeSigner.NewSecret();
        await (await gym.Owner().PutAsJsonAsync("/api/gym/integrations/stripe", new { endpoint_secret = secret })).AssertStatusAsync(HttpStatusCode.OK);
        await (await gym.Owner().PostJsonAsync("/api/gym/members", new { name = "Ana Silva", email = "Ana@Example.com", user_id = "user_ana" }))
            .AssertStatusAsync(HttpStatusCode.Created);
        return (gym, secret);
    }

    private Task<HttpResponseMessage> PostAsync(string url, string payload, string? signature)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(payload, Encoding.UTF8, "application/json") };
        if (signature is not null)
        {
            request.Headers.TryAddWithoutValidation("Stripe-Signature", signature);
        }
        return fx.Client().SendAsync(request);
    }

    private Task<HttpResponseMessage> DeliverAsync(Guid gymId, string payload, string secret) =>
        PostAsync($"/api/integrations/stripe/webhook/{gymId}", payload, StripeSigner.Sign(payload, secret, fx.Clock.GetUtcNow()));

    // The events Stripe caused (creating the test member emits member.joined, which is not Stripe's).
    private Task<List<string>> EventTypesAsync(Guid gymId) =>
        fx.WithDbAsync(db => db.OutboxEvents.Where(e => e.GymId == gymId && e.Type != "member.joined").OrderBy(e => e.Sequence).Select(e => e.Type).ToListAsync());

    private async Task<IntegrationStatus> TileAsync(Guid gymId)
    {
        await using var scope = fx.Services.CreateAsyncScope();
        var tiles = scope.ServiceProvider.GetRequiredService<IntegrationTiles>();
        return await tiles.StatusAsync(tiles.Find("payments")!, gymId, CancellationToken.None);
    }

    [Fact]
    public async Task Two_first_saves_of_the_secret_at_once_both_succeed_and_keep_one_connection()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        // Both find no connection before either inserts one (two tabs, or a double click).
        fx.ReadBarrier.Arm("stripe_accounts", gym.GymId, readers: 2);
        var secrets = new[] { "whsec_first_tab_secret_0001", "whsec_second_tab_secret_002" };
        var responses = await Task.WhenAll(secrets.Select(s => owner.PutAsJsonAsync("/api/gym/integrations/stripe", new { endpoint_secret = s })));
        foreach (var response in responses)
        {
            await response.AssertStatusAsync(HttpStatusCode.OK);
        }
        var hint = await fx.WithDbAsync(db => db.StripeAccounts.Where(a => a.GymId == gym.GymId).Select(a => a.SecretHint).SingleAsync());
        Assert.Contains(hint, secrets.Select(StripeSecrets.Hint));
    }

    [Fact]
    public async Task A_customer_email_in_other_capitals_finds_its_member_beyond_ascii_on_both_stores()
    {
        var (gym, secret) = await ConnectedGymAsync();
        await (await gym.Owner().PostJsonAsync("/api/gym/members", new { name = "Émile Zoë", email = "Émile.Zoë_😀@Example.com", user_id = "user_emile" }))
            .AssertStatusAsync(HttpStatusCode.Created);
        // SQLite's lower() folds only A-Z; PostgreSQL's folds by its collation: the match must not depend on either.
        var payload = StripeSigner.Event("evt_accents_1", "invoice.paid",
            StripeSigner.PaidInvoice("in_accents_1", "cus_accents_1", "ÉMILE.ZOË_😀@EXAMPLE.COM", 4200, "pi_accents_1"), fx.Clock.GetUtcNow());
        var outcome = await (await DeliverAsync(gym.GymId, payload, secret)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("recorded", outcome.GetProperty("outcome").GetString());
        var payment = await fx.WithDbAsync(db => db.Payments.AsNoTracking().SingleAsync(p => p.GymId == gym.GymId));
        Assert.Equal("user_emile", payment.UserId);
    }

    [Fact]
    public async Task A_signed_paid_invoice_records_a_payment_and_emits_payment_received_once_even_when_Stripe_sends_it_twice()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var payload = StripeSigner.Event("evt_paid_1", "invoice.paid",
            StripeSigner.PaidInvoice("in_1", "cus_1", "ana@example.com", 9900, "pi_1"), fx.Clock.GetUtcNow());

        var first = await (await DeliverAsync(gym.GymId, payload, secret)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("recorded", first.GetProperty("outcome").GetString());
        Assert.False(first.GetProperty("duplicate").GetBoolean());
        fx.Clock.Advance(TimeSpan.FromMinutes(1)); // Stripe's retry comes later, newly signed.
        var second = await (await DeliverAsync(gym.GymId, payload, secret)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.True(second.GetProperty("duplicate").GetBoolean());

        var payments = await (await gym.Owner().GetAsync("/api/gym/payments")).AssertStatusAsync(HttpStatusCode.OK);
        var payment = Assert.Single(payments.GetProperty("payments").EnumerateArray());
        Assert.Equal("user_ana", payment.GetProperty("user_id").GetString());
        Assert.Equal(9900, payment.GetProperty("amount_cents").GetInt32());
        Assert.Equal("paid", payment.GetProperty("status").GetString());
        Assert.Equal(["payment.received"], await EventTypesAsync(gym.GymId));
        var data = JsonDocument.Parse(await fx.WithDbAsync(db => db.OutboxEvents.Where(e => e.GymId == gym.GymId && e.Type == "payment.received").Select(e => e.Data).SingleAsync())).RootElement;
        Assert.Equal("user_ana", data.GetProperty("user_id").GetString());
        Assert.Equal(9900, data.GetProperty("amount_cents").GetInt32());

        var events = await (await gym.Owner().GetAsync("/api/gym/integrations/stripe/events")).AssertStatusAsync(HttpStatusCode.OK);
        var recorded = Assert.Single(events.GetProperty("events").EnumerateArray());
        Assert.Equal("evt_paid_1", recorded.GetProperty("stripe_event_id").GetString());
        Assert.Equal("recorded", recorded.GetProperty("outcome").GetString());

        // invoice.payment_succeeded for the same invoice (a different event) does not record it again.
        var succeeded = StripeSigner.Event("evt_paid_2", "invoice.payment_succeeded",
            StripeSigner.PaidInvoice("in_1", "cus_1", "ana@example.com", 9900, "pi_1"), fx.Clock.GetUtcNow());
        var again = await (await DeliverAsync(gym.GymId, succeeded, secret)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("already_recorded", again.GetProperty("outcome").GetString());
        Assert.Equal(1, await fx.WithDbAsync(db => db.Payments.CountAsync(p => p.GymId == gym.GymId)));
        Assert.Equal(IntegrationState.Connected, (await TileAsync(gym.GymId)).State);
    }

    [Fact]
    public async Task Concurrent_deliveries_of_one_event_record_it_once()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var payload = StripeSigner.Event("evt_race", "invoice.paid", StripeSigner.PaidInvoice("in_race", "cus_r", "ana@example.com", 500, "pi_race"), fx.Clock.GetUtcNow());
        var responses = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => DeliverAsync(gym.GymId, payload, secret)));
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(1, await fx.WithDbAsync(db => db.Payments.CountAsync(p => p.GymId == gym.GymId)));
        Assert.Equal(["payment.received"], await EventTypesAsync(gym.GymId));

        // Stripe sends invoice.paid and invoice.payment_succeeded (two events) for one payment at nearly the same moment,
        // here for a customer not seen before. Both look the invoice up before either records it, so both add the
        // invoice's and the customer's links; the second to commit must end as if it had come after the first.
        var invoice = StripeSigner.PaidInvoice("in_race_2", "cus_r2", "ana@example.com", 700, "pi_race_2");
        var paid = StripeSigner.Event("evt_race_paid", "invoice.paid", invoice, fx.Clock.GetUtcNow());
        var succeeded = StripeSigner.Event("evt_race_succeeded", "invoice.payment_succeeded", invoice, fx.Clock.GetUtcNow());
        fx.ReadBarrier.Arm("stripe_links", "in_race_2", readers: 2);
        var both = await Task.WhenAll(new[] { paid, succeeded }.Select(p => DeliverAsync(gym.GymId, p, secret)));
        var acks = await Task.WhenAll(both.Select(r => r.AssertStatusAsync(HttpStatusCode.OK)));
        Assert.Equal(1, await fx.WithDbAsync(db => db.Payments.CountAsync(p => p.GymId == gym.GymId && p.AmountCents == 700)));
        Assert.Equal(["payment.received", "payment.received"], await EventTypesAsync(gym.GymId));
        var outcomes = await fx.WithDbAsync(db => db.StripeEvents.Where(e => e.GymId == gym.GymId && e.StripeEventId.StartsWith("evt_race_"))
            .OrderBy(e => e.Outcome).Select(e => e.Outcome).ToListAsync());
        Assert.Equal(["already_recorded", "recorded"], outcomes);
        Assert.All(acks, a => Assert.Contains(a.GetProperty("outcome").GetString(), outcomes));
        Assert.Equal("user_ana", await fx.WithDbAsync(db => db.StripeLinks
            .Where(l => l.GymId == gym.GymId && l.Kind == "customer" && l.StripeId == "cus_r2").Select(l => l.TargetId).SingleAsync()));
    }

    [Fact]
    public async Task The_owner_and_Stripe_refunding_one_payment_at_once_refund_it_once()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var now = fx.Clock.GetUtcNow();
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_both_paid", "invoice.paid", StripeSigner.PaidInvoice("in_both", "cus_both", "ana@example.com", 4200, "pi_both"), now), secret))
            .AssertStatusAsync(HttpStatusCode.OK);
        var paymentId = await fx.WithDbAsync(db => db.Payments.Where(p => p.GymId == gym.GymId && p.AmountCents == 4200).Select(p => p.Id).SingleAsync());
        var charge = """{"id":"ch_both","object":"charge","customer":"cus_both","payment_intent":"pi_both","amount":4200,"amount_refunded":4200,"refunded":true}""";

        // Both read the payment paid before either writes: one refund commits, and the other finds it refunded.
        fx.ReadBarrier.Arm("payments", paymentId, readers: 2);
        using var owner = gym.Owner();
        var responses = await Task.WhenAll(owner.PostAsync($"/api/gym/payments/{paymentId}/refund", null),
            DeliverAsync(gym.GymId, StripeSigner.Event("evt_both_refund", "charge.refunded", charge, now), secret));
        var outcome = (await responses[1].AssertStatusAsync(HttpStatusCode.OK)).GetProperty("outcome").GetString();
        if (responses[0].StatusCode == HttpStatusCode.OK)
        {
            Assert.Equal("already_recorded", outcome);
        }
        else
        {
            // The owner's lost: a 503 to retry, and the retry says why it cannot be refunded.
            Assert.Contains("concurrent change", await responses[0].AssertErrorAsync(HttpStatusCode.ServiceUnavailable), StringComparison.Ordinal);
            Assert.Equal("recorded", outcome);
            Assert.Contains("refunded", await (await owner.PostAsync($"/api/gym/payments/{paymentId}/refund", null)).AssertErrorAsync(HttpStatusCode.Conflict),
                StringComparison.Ordinal);
        }
        Assert.Equal(["payment.received", "payment.refunded"], await EventTypesAsync(gym.GymId));
        Assert.Equal("refunded", await fx.WithDbAsync(db => db.Payments.Where(p => p.Id == paymentId).Select(p => p.Status).SingleAsync()));
    }

    [Fact]
    public async Task The_owner_and_Stripe_canceling_one_membership_at_once_cancel_it_once()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var now = fx.Clock.GetUtcNow();
        const string subscription = """
            {"id":"sub_both","object":"subscription","customer":"cus_both_m","status":"active","metadata":{"user_id":"user_ana"},
             "items":{"object":"list","data":[{"id":"si_both","price":{"id":"price_both","nickname":"Both","unit_amount":5000,"currency":"usd","recurring":{"interval":"month"}}}]}}
            """;
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_both_sub", "customer.subscription.created", subscription, now), secret)).AssertStatusAsync(HttpStatusCode.OK);
        var membershipId = await fx.WithDbAsync(db => db.Memberships.Where(m => m.GymId == gym.GymId).Select(m => m.Id).SingleAsync());

        // Both read the membership active before either writes: one cancel commits, and the other finds it canceled.
        fx.ReadBarrier.Arm("memberships", membershipId, readers: 2);
        using var owner = gym.Owner();
        var responses = await Task.WhenAll(owner.PostAsync($"/api/gym/memberships/{membershipId}/cancel", null),
            DeliverAsync(gym.GymId, StripeSigner.Event("evt_both_del", "customer.subscription.deleted", subscription.Replace("active", "canceled", StringComparison.Ordinal), now), secret));
        var outcome = (await responses[1].AssertStatusAsync(HttpStatusCode.OK)).GetProperty("outcome").GetString();
        if (responses[0].StatusCode == HttpStatusCode.OK)
        {
            Assert.Equal("already_recorded", outcome);
        }
        else
        {
            Assert.Contains("concurrent change", await responses[0].AssertErrorAsync(HttpStatusCode.ServiceUnavailable), StringComparison.Ordinal);
            Assert.Equal("recorded", outcome);
        }
        Assert.Single(await EventTypesAsync(gym.GymId), "membership.canceled");
        Assert.Equal("canceled", await fx.WithDbAsync(db => db.Memberships.Where(m => m.Id == membershipId).Select(m => m.Status).SingleAsync()));
    }

    [Fact]
    public async Task A_price_nickname_longer_than_a_plan_name_makes_a_plan_with_the_name_cut_to_fit()
    {
        var (gym, secret) = await ConnectedGymAsync();
        // The cut falls inside the emoji (two UTF-16 units): the whole character goes, not half of it.
        var nickname = new string('a', 192) + "\U0001F3CB" + new string('b', 60);
        var subscription = """
            {"id":"sub_long","object":"subscription","customer":"cus_long","status":"active","metadata":{"user_id":"user_ana"},
             "items":{"object":"list","data":[{"id":"si_long","price":{"id":"price_long","nickname":NICK,"unit_amount":4900,"currency":"usd","recurring":{"interval":"month"}}}]}}
            """.Replace("NICK", JsonSerializer.Serialize(nickname), StringComparison.Ordinal);
        var ack = await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_long", "customer.subscription.created", subscription, fx.Clock.GetUtcNow()), secret))
            .AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("recorded", ack.GetProperty("outcome").GetString());
        var plan = await fx.WithDbAsync(db => db.MembershipPlans.SingleAsync(p => p.GymId == gym.GymId));
        Assert.Equal("Stripe " + new string('a', 192), plan.Name);
        Assert.Equal(["membership.activated"], await EventTypesAsync(gym.GymId));
    }

    [Fact]
    public async Task Tampered_missing_stale_or_foreign_signatures_are_refused_with_400_and_nothing_is_recorded()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var payload = StripeSigner.Event("evt_bad", "invoice.paid", StripeSigner.PaidInvoice("in_bad", "cus_1", "ana@example.com", 9900, "pi_bad"), fx.Clock.GetUtcNow());
        var url = $"/api/integrations/stripe/webhook/{gym.GymId}";
        var signature = StripeSigner.Sign(payload, secret, fx.Clock.GetUtcNow());

        await (await PostAsync(url, payload.Replace("9900", "1", StringComparison.Ordinal), signature)).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains("Stripe-Signature", await (await PostAsync(url, payload, null)).AssertErrorAsync(HttpStatusCode.BadRequest), StringComparison.Ordinal);
        await (await PostAsync(url, payload, "t=1,v1=00")).AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await PostAsync(url, payload, StripeSigner.Sign(payload, StripeSigner.NewSecret(), fx.Clock.GetUtcNow()))).AssertErrorAsync(HttpStatusCode.BadRequest);
        // Rejections are written at most once a minute: the stale one below is the tile's after a minute.
        fx.Clock.Advance(StripeEndpoints.FailureRecordInterval);
        var stale = await (await PostAsync(url, payload, StripeSigner.Sign(payload, secret, fx.Clock.GetUtcNow().AddMinutes(-10)))).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Equal(StripeEndpoints.SignatureRejected, stale);

        // Another gym's URL does not accept this gym's secret.
        var (other, _) = await ConnectedGymAsync();
        await (await PostAsync($"/api/integrations/stripe/webhook/{other.GymId}", payload, signature)).AssertErrorAsync(HttpStatusCode.BadRequest);

        Assert.Equal(0, await fx.WithDbAsync(db => db.Payments.CountAsync(p => p.GymId == gym.GymId)));
        Assert.Equal(0, await fx.WithDbAsync(db => db.StripeEvents.CountAsync(e => e.GymId == gym.GymId)));
        Assert.Empty(await EventTypesAsync(gym.GymId));
        var tile = await TileAsync(gym.GymId);
        Assert.Equal(IntegrationState.Error, tile.State);
        Assert.Contains("timestamp", tile.Reason, StringComparison.Ordinal);

        // A good delivery afterwards clears the error.
        await (await DeliverAsync(gym.GymId, payload, secret)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(IntegrationState.Connected, (await TileAsync(gym.GymId)).State);
        Assert.DoesNotContain(fx.Logs.Lines, l => l.Contains(secret, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Once_an_event_verified_with_the_secret_a_forged_post_is_shown_on_the_tile_without_an_error_for_a_day_and_written_once_a_minute()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var url = $"/api/integrations/stripe/webhook/{gym.GymId}";
        var paid = StripeSigner.Event("evt_verified", "invoice.paid", StripeSigner.PaidInvoice("in_verified", "cus_1", "ana@example.com", 9900, "pi_verified"), fx.Clock.GetUtcNow());
        await (await DeliverAsync(gym.GymId, paid, secret)).AssertStatusAsync(HttpStatusCode.OK);
        Task<StripeAccount> AccountAsync() => fx.WithDbAsync(db => db.StripeAccounts.AsNoTracking().SingleAsync(a => a.GymId == gym.GymId));

        // Anyone who knows the URL can post a bad signature: it is refused and shown, and the tile stays connected.
        fx.Clock.Advance(TimeSpan.FromSeconds(1));
        var forged = StripeSigner.Event("evt_forged", "invoice.paid", StripeSigner.PaidInvoice("in_forged", "cus_1", "ana@example.com", 1, "pi_forged"), fx.Clock.GetUtcNow());
        await (await PostAsync(url, forged, StripeSigner.Sign(forged, StripeSigner.NewSecret(), fx.Clock.GetUtcNow()))).AssertErrorAsync(HttpStatusCode.BadRequest);
        var tile = await TileAsync(gym.GymId);
        Assert.Equal(IntegrationState.Connected, tile.State);
        Assert.Contains("Rejected a webhook: the signature does not match the body and the endpoint secret (", tile.Reason, StringComparison.Ordinal);
        var firstRejection = await AccountAsync();

        // Within the minute a rejection writes nothing; after it, the latest is written.
        fx.Clock.Advance(TimeSpan.FromSeconds(10));
        await (await PostAsync(url, forged, "t=1,v1=00")).AssertErrorAsync(HttpStatusCode.BadRequest);
        var unchanged = await AccountAsync();
        Assert.Equal((firstRejection.LastFailureAt, firstRejection.LastFailure), (unchanged.LastFailureAt, unchanged.LastFailure));
        fx.Clock.Advance(StripeEndpoints.FailureRecordInterval);
        await (await PostAsync(url, forged, StripeSigner.Sign(forged, secret, fx.Clock.GetUtcNow().AddMinutes(-10)))).AssertErrorAsync(HttpStatusCode.BadRequest);
        var later = await AccountAsync();
        Assert.Equal(fx.Clock.GetUtcNow().UtcDateTime, later.LastFailureAt);
        Assert.Contains("timestamp", later.LastFailure, StringComparison.Ordinal);
        Assert.Equal(0, await fx.WithDbAsync(db => db.Payments.CountAsync(p => p.GymId == gym.GymId && p.AmountCents == 1)));
        Assert.Equal(IntegrationState.Connected, (await TileAsync(gym.GymId)).State);

        // Posts still rejected a day after the last verified event: a secret rolled in Stripe and not here.
        fx.Clock.Advance(StripeIntegration.RejectedForAnError);
        await (await PostAsync(url, forged, StripeSigner.Sign(forged, StripeSigner.NewSecret(), fx.Clock.GetUtcNow()))).AssertErrorAsync(HttpStatusCode.BadRequest);
        tile = await TileAsync(gym.GymId);
        Assert.Equal(IntegrationState.Error, tile.State);
        Assert.Contains("no event has verified since", tile.Reason, StringComparison.Ordinal);

        // A new secret has verified nothing yet: a rejection then is the owner's wrong secret, an error until an event verifies.
        var rotated = StripeSigner.NewSecret();
        await (await gym.Owner().PutAsJsonAsync("/api/gym/integrations/stripe", new { endpoint_secret = rotated })).AssertStatusAsync(HttpStatusCode.OK);
        fx.Clock.Advance(TimeSpan.FromSeconds(1));
        await (await DeliverAsync(gym.GymId, forged, secret)).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Equal(IntegrationState.Error, (await TileAsync(gym.GymId)).State);
        fx.Clock.Advance(TimeSpan.FromSeconds(1));
        var next = StripeSigner.Event("evt_rotated", "invoice.paid", StripeSigner.PaidInvoice("in_rotated", "cus_1", "ana@example.com", 500, "pi_rotated"), fx.Clock.GetUtcNow());
        await (await DeliverAsync(gym.GymId, next, rotated)).AssertStatusAsync(HttpStatusCode.OK);
        tile = await TileAsync(gym.GymId);
        Assert.Equal(IntegrationState.Connected, tile.State);
        Assert.DoesNotContain("Rejected", tile.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rejected_posts_answer_alike_whether_or_not_the_gym_has_Stripe_connected_and_are_logged_at_debug_only()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var unconnected = await fx.CreateGymAsync();
        var logged = fx.Logs.Lines.Count;
        var now = fx.Clock.GetUtcNow();
        var payload = StripeSigner.Event("evt_probe", "invoice.paid", StripeSigner.PaidInvoice("in_probe", "cus_1", "ana@example.com", 100, "pi_probe"), now);
        string[] urls =
        [
            $"{StripeEndpoints.WebhookPath}/{gym.GymId}", $"{StripeEndpoints.WebhookPath}/{unconnected.GymId}", $"{StripeEndpoints.WebhookPath}/{Guid.NewGuid()}",
            $"{StripeEndpoints.WebhookPath}?gym={unconnected.GymId}", StripeEndpoints.WebhookPath,
        ];
        // A foreign secret, a malformed header, and (for the connected gym, a mismatch elsewhere) its own secret, stale.
        string[] signatures = [StripeSigner.Sign(payload, StripeSigner.NewSecret(), now), "t=1,v1=00", "nonsense", StripeSigner.Sign(payload, secret, now.AddMinutes(-10))];
        var answers = new HashSet<string>();
        foreach (var url in urls)
        {
            foreach (var signature in signatures)
            {
                var response = await PostAsync(url, payload, signature);
                Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
                answers.Add(await response.Content.ReadAsStringAsync());
            }
        }
        Assert.Equal(StripeEndpoints.SignatureRejected, JsonDocument.Parse(Assert.Single(answers)).RootElement.GetProperty("error").GetString());

        // The owner still sees why; the log has the reasons at Debug only, so forged posts cannot flood it.
        Assert.Contains("Rejected a webhook: the signature does not match the body and the endpoint secret", (await TileAsync(gym.GymId)).Reason, StringComparison.Ordinal);
        var lines = fx.Logs.Lines.Skip(logged).ToList();
        Assert.Contains(lines, l => l.StartsWith("Debug Gymwire.Features.Stripe", StringComparison.Ordinal) && l.Contains("Stripe is not connected for this gym", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("Stripe", StringComparison.Ordinal)
            && (l.StartsWith("Warning ", StringComparison.Ordinal) || l.StartsWith("Error ", StringComparison.Ordinal) || l.StartsWith("Critical ", StringComparison.Ordinal)));
        Assert.Equal(0, await fx.WithDbAsync(db => db.StripeEvents.CountAsync(e => e.GymId == gym.GymId)));
    }

    [Fact]
    public async Task A_signed_event_with_a_control_character_is_refused_whatever_its_content_type_and_nothing_is_recorded()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var logged = fx.Logs.Lines.Count;
        var payload = StripeSigner.Event("evt_\\u0000nul", "invoice.paid", StripeSigner.PaidInvoice("in_nul", "cus_1", "ana@example.com", 9900, "pi_nul"), fx.Clock.GetUtcNow());
        Assert.Contains("\\u0000", payload, StringComparison.Ordinal);
        foreach (var contentType in new[] { "text/plain", "application/json" })
        {
            var request = new HttpRequestMessage(HttpMethod.Post, $"/api/integrations/stripe/webhook/{gym.GymId}") { Content = new StringContent(payload, Encoding.UTF8, contentType) };
            request.Headers.TryAddWithoutValidation("Stripe-Signature", StripeSigner.Sign(payload, secret, fx.Clock.GetUtcNow()));
            Assert.Contains("U+0000", await (await fx.Client().SendAsync(request)).AssertErrorAsync(HttpStatusCode.BadRequest), StringComparison.Ordinal);
        }
        Assert.Equal(0, await fx.WithDbAsync(db => db.StripeEvents.CountAsync(e => e.GymId == gym.GymId)));
        Assert.Equal(0, await fx.WithDbAsync(db => db.Payments.CountAsync(p => p.GymId == gym.GymId)));
        fx.Logs.AssertNoErrorsSince(logged);
    }

    [Theory]
    [InlineData("[1,2]")]
    [InlineData("42")]
    [InlineData("\"evt\"")]
    [InlineData("null")]
    public async Task A_signed_body_that_is_not_an_event_object_is_400_and_not_logged_as_an_error(string body)
    {
        var (gym, secret) = await ConnectedGymAsync();
        var logged = fx.Logs.Lines.Count;
        var message = await (await DeliverAsync(gym.GymId, body, secret)).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains("The body is not a Stripe event", message, StringComparison.Ordinal);
        Assert.Equal(0, await fx.WithDbAsync(db => db.StripeEvents.CountAsync(e => e.GymId == gym.GymId)));
        fx.Logs.AssertNoErrorsSince(logged);
    }

    [Fact]
    public async Task A_stored_secret_that_no_longer_decrypts_puts_the_tile_in_error_even_after_verified_events()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var paid = StripeSigner.Event("evt_before_loss", "invoice.paid", StripeSigner.PaidInvoice("in_loss", "cus_1", "ana@example.com", 9900, "pi_loss"), fx.Clock.GetUtcNow());
        await (await DeliverAsync(gym.GymId, paid, secret)).AssertStatusAsync(HttpStatusCode.OK);

        // As after a lost key ring: the ciphertext is there, and nothing decrypts it.
        await fx.WithDbAsync(db => db.StripeAccounts.Where(a => a.GymId == gym.GymId)
            .ExecuteUpdateAsync(u => u.SetProperty(a => a.ProtectedEndpointSecret, "CfDJ8-not-a-ciphertext")));

        var tile = await TileAsync(gym.GymId);
        Assert.Equal(IntegrationState.Error, tile.State);
        Assert.Contains("cannot be decrypted", tile.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_issue_path_routes_by_gym_query_or_by_the_secret_that_verifies()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var first = StripeSigner.Event("evt_q1", "invoice.paid", StripeSigner.PaidInvoice("in_q1", "cus_q", "ana@example.com", 1000, "pi_q1"), fx.Clock.GetUtcNow());
        await (await PostAsync($"/api/integrations/stripe/webhook?gym={gym.GymId}", first, StripeSigner.Sign(first, secret, fx.Clock.GetUtcNow())))
            .AssertStatusAsync(HttpStatusCode.OK);
        var second = StripeSigner.Event("evt_q2", "invoice.paid", StripeSigner.PaidInvoice("in_q2", "cus_q", "ana@example.com", 2000, "pi_q2"), fx.Clock.GetUtcNow());
        await (await PostAsync("/api/integrations/stripe/webhook", second, StripeSigner.Sign(second, secret, fx.Clock.GetUtcNow())))
            .AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(3000, await fx.WithDbAsync(db => db.Payments.Where(p => p.GymId == gym.GymId).SumAsync(p => p.AmountCents)));
        await (await PostAsync("/api/integrations/stripe/webhook", second, StripeSigner.Sign(second, StripeSigner.NewSecret(), fx.Clock.GetUtcNow())))
            .AssertErrorAsync(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task An_event_whose_secret_two_gyms_hold_is_refused_on_the_path_without_a_gym_and_taken_on_each_gyms_own()
    {
        var (first, secret) = await ConnectedGymAsync();
        var second = await fx.CreateGymAsync();
        await (await second.Owner().PutAsJsonAsync("/api/gym/integrations/stripe", new { endpoint_secret = secret })).AssertStatusAsync(HttpStatusCode.OK);
        var payload = StripeSigner.Event("evt_shared", "invoice.paid", StripeSigner.PaidInvoice("in_shared", "cus_s", "ana@example.com", 1500, "pi_shared"), fx.Clock.GetUtcNow());
        var refused = await (await PostAsync(StripeEndpoints.WebhookPath, payload, StripeSigner.Sign(payload, secret, fx.Clock.GetUtcNow())))
            .AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains("More than one gym", refused, StringComparison.Ordinal);
        Assert.Equal(0, await fx.WithDbAsync(db => db.StripeEvents.CountAsync(e => e.GymId == first.GymId || e.GymId == second.GymId)));

        await (await DeliverAsync(first.GymId, payload, secret)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(1500, await fx.WithDbAsync(db => db.Payments.Where(p => p.GymId == first.GymId).SumAsync(p => p.AmountCents)));
        Assert.Equal(0, await fx.WithDbAsync(db => db.StripeEvents.CountAsync(e => e.GymId == second.GymId)));
    }

    [Fact]
    public async Task Failure_refund_and_subscription_lifecycle_map_to_gymwire_events()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var now = fx.Clock.GetUtcNow();
        const string subscription = """
            {"id":"sub_1","object":"subscription","customer":"cus_ana","status":"active","metadata":{"user_id":"user_ana"},
             "items":{"object":"list","data":[{"id":"si_1","price":{"id":"price_gold","nickname":"Gold","unit_amount":9900,"currency":"usd","recurring":{"interval":"month"}}}]}}
            """;
        Assert.Equal("recorded", (await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_s1", "customer.subscription.created", subscription, now), secret))
            .AssertStatusAsync(HttpStatusCode.OK)).GetProperty("outcome").GetString());
        // The customer is now known, so an invoice without email or metadata still finds the member.
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_i1", "invoice.payment_failed",
            StripeSigner.PaidInvoice("in_f", "cus_ana", null, 9900, "pi_f", subscription: "sub_1").Replace("\"amount_paid\":9900", "\"amount_paid\":0", StringComparison.Ordinal), now), secret))
            .AssertStatusAsync(HttpStatusCode.OK);
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_i2", "invoice.paid",
            StripeSigner.PaidInvoice("in_ok", "cus_ana", null, 9900, "pi_ok", subscription: "sub_1"), now), secret)).AssertStatusAsync(HttpStatusCode.OK);
        var refund = """{"id":"ch_1","object":"charge","customer":"cus_ana","payment_intent":"pi_ok","amount":9900,"amount_refunded":9900,"refunded":true}""";
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_r1", "charge.refunded", refund, now), secret)).AssertStatusAsync(HttpStatusCode.OK);
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_s2", "customer.subscription.deleted", subscription.Replace("active", "canceled", StringComparison.Ordinal), now), secret))
            .AssertStatusAsync(HttpStatusCode.OK);

        Assert.Equal(["membership.activated", "payment.failed", "payment.received", "payment.refunded", "membership.canceled"], await EventTypesAsync(gym.GymId));
        var plan = await fx.WithDbAsync(db => db.MembershipPlans.SingleAsync(p => p.GymId == gym.GymId));
        Assert.Equal("Stripe Gold", plan.Name);
        Assert.Equal(9900, plan.PriceCents);
        var paid = await fx.WithDbAsync(db => db.Payments.SingleAsync(p => p.GymId == gym.GymId && p.AmountCents == 9900 && p.Status == "refunded"));
        Assert.Equal(plan.Id, paid.PlanId);
        Assert.Equal("canceled", await fx.WithDbAsync(db => db.Memberships.Where(m => m.GymId == gym.GymId).Select(m => m.Status).SingleAsync()));
    }

    private const string Basil = "2025-03-31.basil";

    // From 2025-03-31.basil the invoice no longer names its payment intent or charge, nor the charge its invoice;
    // invoice_payment.paid is what ties them, and Stripe may send it before or after invoice.paid.
    [Theory]
    [InlineData(false, "payment_intent")]
    [InlineData(true, "payment_intent")]
    [InlineData(true, "charge")]
    public async Task On_basil_a_refund_finds_the_invoice_s_payment_through_invoice_payment_paid_in_either_order(bool invoicePaymentFirst, string paidWith)
    {
        var (gym, secret) = await ConnectedGymAsync();
        var now = fx.Clock.GetUtcNow();
        var paid = StripeSigner.Event("evt_b_paid", "invoice.paid",
            StripeSigner.BasilPaidInvoice("in_b", "cus_b", "ana@example.com", 4900, "sub_b", userId: "user_ana"), now, Basil);
        var invoicePayment = StripeSigner.Event("evt_b_inpay", "invoice_payment.paid",
            StripeSigner.InvoicePayment("inpay_b", "in_b", 4900, paidWith, paidWith == "charge" ? "ch_b" : "pi_b"), now, Basil);
        var acks = new List<string?>();
        foreach (var payload in invoicePaymentFirst ? new[] { invoicePayment, paid } : [paid, invoicePayment])
        {
            acks.Add((await (await DeliverAsync(gym.GymId, payload, secret)).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("outcome").GetString());
        }
        // A charge made through a payment intent names it (the invoice payment then names the intent, not the charge).
        var refund = """{"id":"ch_b","object":"charge","customer":"cus_b","payment_intent":PI,"amount":4900,"amount_refunded":4900,"refunded":true}"""
            .Replace("PI", paidWith == "charge" ? "null" : "\"pi_b\"", StringComparison.Ordinal);
        var refunded = await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_b_refund", "charge.refunded", refund, now, Basil), secret))
            .AssertStatusAsync(HttpStatusCode.OK);

        Assert.Equal("recorded", refunded.GetProperty("outcome").GetString());
        Assert.Equal(["recorded", "recorded"], acks);
        Assert.Equal("refunded", await fx.WithDbAsync(db => db.Payments.Where(p => p.GymId == gym.GymId).Select(p => p.Status).SingleAsync()));
        Assert.Equal(["payment.received", "payment.refunded"], await EventTypesAsync(gym.GymId));
    }

    [Fact]
    public async Task On_basil_invoice_paid_and_invoice_payment_paid_arriving_together_still_let_the_refund_find_the_payment()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var now = fx.Clock.GetUtcNow();
        var paid = StripeSigner.Event("evt_c_paid", "invoice.paid",
            StripeSigner.BasilPaidInvoice("in_c", "cus_c", "ana@example.com", 4900, "sub_c", userId: "user_ana"), now, Basil);
        var invoicePayment = StripeSigner.Event("evt_c_inpay", "invoice_payment.paid",
            StripeSigner.InvoicePayment("inpay_c", "in_c", 4900, "payment_intent", "pi_c"), now, Basil);
        // Both look the invoice up before either commits: neither sees what the other is about to write.
        fx.ReadBarrier.Arm("stripe_links", "in_c", readers: 2);
        var both = await Task.WhenAll(new[] { paid, invoicePayment }.Select(p => DeliverAsync(gym.GymId, p, secret)));
        var acks = await Task.WhenAll(both.Select(r => r.AssertStatusAsync(HttpStatusCode.OK)));
        Assert.All(acks, a => Assert.Equal("recorded", a.GetProperty("outcome").GetString()));

        var refund = """{"id":"ch_c","object":"charge","customer":"cus_c","payment_intent":"pi_c","amount":4900,"amount_refunded":4900,"refunded":true}""";
        var refunded = await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_c_refund", "charge.refunded", refund, now, Basil), secret))
            .AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("recorded", refunded.GetProperty("outcome").GetString());
        Assert.Equal(["payment.received", "payment.refunded"], await EventTypesAsync(gym.GymId));
    }

    // Stripe does not promise order: a refund can come before the invoice.paid (or invoice_payment.paid) that records
    // what it refunds, and it is answered 200 and never sent again.
    [Theory]
    [InlineData("2024-06-20", "refund,paid")]
    [InlineData(Basil, "refund,inpay,paid")]
    [InlineData(Basil, "refund,paid,inpay")]
    public async Task A_refund_received_before_the_payment_it_refunds_is_applied_when_the_payment_is_linked(string apiVersion, string order)
    {
        var (gym, secret) = await ConnectedGymAsync();
        var now = fx.Clock.GetUtcNow();
        var charge = """{"id":"ch_6","object":"charge","customer":"cus_6","payment_intent":"pi_6","amount":4900,"amount_refunded":4900,"refunded":true}""";
        var payloads = new Dictionary<string, string>
        {
            ["refund"] = StripeSigner.Event("evt_6_refund", "charge.refunded", charge, now, apiVersion),
            ["paid"] = StripeSigner.Event("evt_6_paid", "invoice.paid", apiVersion == Basil
                ? StripeSigner.BasilPaidInvoice("in_6", "cus_6", "ana@example.com", 4900, "sub_6", userId: "user_ana")
                : StripeSigner.PaidInvoice("in_6", "cus_6", "ana@example.com", 4900, "pi_6"), now, apiVersion),
            ["inpay"] = StripeSigner.Event("evt_6_inpay", "invoice_payment.paid", StripeSigner.InvoicePayment("inpay_6", "in_6", 4900, "payment_intent", "pi_6"), now, apiVersion),
        };
        var acks = new List<string?>();
        foreach (var step in order.Split(','))
        {
            acks.Add((await (await DeliverAsync(gym.GymId, payloads[step], secret)).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("outcome").GetString());
        }

        Assert.Equal("unknown_payment", acks[0]);
        Assert.Equal("refunded", await fx.WithDbAsync(db => db.Payments.Where(p => p.GymId == gym.GymId).Select(p => p.Status).SingleAsync()));
        Assert.Equal(["payment.received", "payment.refunded"], await EventTypesAsync(gym.GymId));
        var kept = await fx.WithDbAsync(db => db.StripeEvents.AsNoTracking().SingleAsync(e => e.GymId == gym.GymId && e.StripeEventId == "evt_6_refund"));
        Assert.Equal("recorded", kept.Outcome);
        Assert.Contains("refunded", kept.Detail, StringComparison.Ordinal);
        Assert.Contains("evt_6_refund", await fx.WithDbAsync(db => db.StripeEvents.Where(e => e.GymId == gym.GymId && e.Detail!.Contains("applied"))
            .Select(e => e.Detail).SingleAsync()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_kept_event_that_matched_nothing_can_be_processed_again_by_the_owner_once_what_it_needs_is_there()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var now = fx.Clock.GetUtcNow();
        using var owner = gym.Owner();
        async Task<Guid> IdOfAsync(string eventId) =>
            await fx.WithDbAsync(db => db.StripeEvents.Where(e => e.GymId == gym.GymId && e.StripeEventId == eventId).Select(e => e.Id).SingleAsync());

        // A member not yet in Gymwire, added afterwards.
        var stranger = await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_late_member", "invoice.paid",
            StripeSigner.PaidInvoice("in_late", "cus_late", "bo@example.com", 4200, "pi_late"), now), secret)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("unknown_member", stranger.GetProperty("outcome").GetString());
        var unmatched = await IdOfAsync("evt_late_member");
        var still = await (await owner.PostAsync($"/api/gym/integrations/stripe/events/{unmatched}/reprocess", null)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("unknown_member", still.GetProperty("outcome").GetString());
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Bo", email = "bo@example.com", user_id = "user_bo" })).AssertStatusAsync(HttpStatusCode.Created);
        var done = await (await owner.PostAsync($"/api/gym/integrations/stripe/events/{unmatched}/reprocess", null)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("recorded", done.GetProperty("outcome").GetString());
        Assert.Equal("user_bo", await fx.WithDbAsync(db => db.Payments.Where(p => p.GymId == gym.GymId).Select(p => p.UserId).SingleAsync()));
        Assert.Equal("recorded", await fx.WithDbAsync(db => db.StripeEvents.Where(e => e.Id == unmatched).Select(e => e.Outcome).SingleAsync()));
        // Done once: again is a conflict, and records nothing more.
        Assert.Contains("recorded", await (await owner.PostAsync($"/api/gym/integrations/stripe/events/{unmatched}/reprocess", null))
            .AssertErrorAsync(HttpStatusCode.Conflict), StringComparison.Ordinal);
        Assert.Equal(1, await fx.WithDbAsync(db => db.Payments.CountAsync(p => p.GymId == gym.GymId)));

        // A cancellation before the subscription's creation.
        const string subscription = """
            {"id":"sub_late","object":"subscription","customer":"cus_ana_l","status":"active","metadata":{"user_id":"user_ana"},
             "items":{"object":"list","data":[{"id":"si_late","price":{"id":"price_late","nickname":"Late","unit_amount":5000,"currency":"usd","recurring":{"interval":"month"}}}]}}
            """;
        var deleted = await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_late_del", "customer.subscription.deleted",
            subscription.Replace("active", "canceled", StringComparison.Ordinal), now), secret)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("unknown_subscription", deleted.GetProperty("outcome").GetString());
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_late_sub", "customer.subscription.created", subscription, now), secret)).AssertStatusAsync(HttpStatusCode.OK);
        var canceled = await (await owner.PostAsync($"/api/gym/integrations/stripe/events/{await IdOfAsync("evt_late_del")}/reprocess", null))
            .AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("recorded", canceled.GetProperty("outcome").GetString());
        Assert.Equal("canceled", await fx.WithDbAsync(db => db.Memberships.Where(m => m.GymId == gym.GymId).Select(m => m.Status).SingleAsync()));
        Assert.Equal(["payment.received", "membership.activated", "membership.canceled"], await EventTypesAsync(gym.GymId));

        // Owner only, this gym's events only.
        var key = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "k", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        await (await fx.Client(key.GetProperty("key").GetString()).PostAsync($"/api/gym/integrations/stripe/events/{unmatched}/reprocess", null))
            .AssertErrorAsync(HttpStatusCode.Forbidden);
        var (other, _) = await ConnectedGymAsync();
        await (await other.Owner().PostAsync($"/api/gym/integrations/stripe/events/{unmatched}/reprocess", null)).AssertErrorAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task An_amount_beyond_what_a_payment_stores_is_ignored_saying_so_not_as_a_zero_amount()
    {
        var (gym, secret) = await ConnectedGymAsync();
        // 2,500,000,000 rupiah: more than a 32-bit amount holds.
        var invoice = StripeSigner.PaidInvoice("in_idr", "cus_idr", "ana@example.com", 1, "pi_idr")
            .Replace("\"amount_due\":1,\"amount_paid\":1,\"currency\":\"usd\"", "\"amount_due\":2500000000,\"amount_paid\":2500000000,\"currency\":\"idr\"", StringComparison.Ordinal);
        Assert.Contains("2500000000", invoice, StringComparison.Ordinal);
        foreach (var (eventId, type) in new[] { ("evt_idr_paid", "invoice.paid"), ("evt_idr_failed", "invoice.payment_failed") })
        {
            var ack = await (await DeliverAsync(gym.GymId, StripeSigner.Event(eventId, type, invoice, fx.Clock.GetUtcNow()), secret)).AssertStatusAsync(HttpStatusCode.OK);
            Assert.Equal("ignored", ack.GetProperty("outcome").GetString());
            var detail = await fx.WithDbAsync(db => db.StripeEvents.Where(e => e.GymId == gym.GymId && e.StripeEventId == eventId).Select(e => e.Detail).SingleAsync());
            Assert.Contains("exceeds what Gymwire stores", detail, StringComparison.Ordinal);
            Assert.DoesNotContain("zero amount", detail, StringComparison.Ordinal);
        }
        Assert.Equal(0, await fx.WithDbAsync(db => db.Payments.CountAsync(p => p.GymId == gym.GymId)));
        Assert.Empty(await EventTypesAsync(gym.GymId));
    }

    [Fact]
    public async Task A_payment_and_a_refund_Stripe_delivers_late_are_dated_when_they_happened_and_still_come_first_in_the_next_poll()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var key = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "z", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        using var zapier = fx.Client(key.GetProperty("key").GetString());
        // Payments recorded through the API while Gymwire could not take Stripe's events: a whole poll's worth.
        for (var i = 0; i < 5; i++)
        {
            await (await zapier.PostJsonAsync("/api/gym/payments", new { user_id = "user_ana", amount_cents = 100 + i })).AssertStatusAsync(HttpStatusCode.Created);
        }
        fx.Clock.Advance(TimeSpan.FromMinutes(1));
        var now = fx.Clock.GetUtcNow();
        var paidAt = now.AddDays(-3);
        var invoice = StripeSigner.PaidInvoice("in_late_1", "cus_late_1", "ana@example.com", 4900, "pi_late_1")
            .Replace("\"status\":\"paid\"", $"\"status\":\"paid\",\"status_transitions\":{{\"paid_at\":{paidAt.ToUnixTimeSeconds()}}}", StringComparison.Ordinal);
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_late_1", "invoice.paid", invoice, paidAt.AddMinutes(1)), secret)).AssertStatusAsync(HttpStatusCode.OK);
        // Without status_transitions (as some API versions send it), the event's own time.
        fx.Clock.Advance(TimeSpan.FromSeconds(1));
        var eventAt = now.AddDays(-1);
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_late_2", "invoice.paid",
            StripeSigner.BasilPaidInvoice("in_late_2", "cus_late_1", "ana@example.com", 5900, "sub_late_2", userId: "user_ana"), eventAt, Basil), secret))
            .AssertStatusAsync(HttpStatusCode.OK);
        var refundAt = now.AddDays(-2);
        var charge = """{"id":"ch_late_1","object":"charge","customer":"cus_late_1","payment_intent":"pi_late_1","amount":4900,"amount_refunded":4900,"refunded":true}""";
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_late_r", "charge.refunded", charge, refundAt), secret)).AssertStatusAsync(HttpStatusCode.OK);

        var first = await fx.WithDbAsync(db => db.Payments.AsNoTracking().SingleAsync(p => p.GymId == gym.GymId && p.AmountCents == 4900));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(paidAt.ToUnixTimeSeconds()).UtcDateTime, first.CreatedAt);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(refundAt.ToUnixTimeSeconds()).UtcDateTime, first.RefundedAt);
        var second = await fx.WithDbAsync(db => db.Payments.AsNoTracking().SingleAsync(p => p.GymId == gym.GymId && p.AmountCents == 5900));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(eventAt.ToUnixTimeSeconds()).UtcDateTime, second.CreatedAt);

        // The newest-first poll (Zapier's) orders by when Gymwire recorded them: the late ones come first, with their dates.
        var latest = (await (await zapier.GetAsync("/api/zapier/triggers?type=new_payment&limit=5")).AssertStatusAsync(HttpStatusCode.OK)).EnumerateArray().ToList();
        Assert.Equal([second.Id, first.Id], latest.Take(2).Select(p => p.GetProperty("id").GetGuid()));
        Assert.Equal(first.CreatedAt, latest[1].GetProperty("created_at").GetDateTime().ToUniversalTime());
    }

    [Theory]
    [InlineData("jpy", 5000, "5000 jpy")]
    [InlineData("kwd", 5000, "5.000 kwd")]
    [InlineData("usd", 5000, "50.00 usd")]
    public async Task An_amount_is_shown_with_its_currency_s_decimals(string currency, int amount, string shown)
    {
        var (gym, secret) = await ConnectedGymAsync();
        var invoice = StripeSigner.PaidInvoice($"in_{currency}", "cus_stranger", "nobody@example.com", amount, $"pi_{currency}")
            .Replace("\"currency\":\"usd\"", $"\"currency\":\"{currency}\"", StringComparison.Ordinal);
        await (await DeliverAsync(gym.GymId, StripeSigner.Event($"evt_{currency}", "invoice.paid", invoice, fx.Clock.GetUtcNow()), secret)).AssertStatusAsync(HttpStatusCode.OK);
        var detail = await fx.WithDbAsync(db => db.StripeEvents.Where(e => e.GymId == gym.GymId).Select(e => e.Detail).SingleAsync());
        Assert.Contains($"for {shown}:", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Memberships_from_subscriptions_Stripe_delivers_late_are_dated_when_they_started_and_ended()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var now = fx.Clock.GetUtcNow();
        static DateTime Seconds(DateTimeOffset at) => DateTimeOffset.FromUnixTimeSeconds(at.ToUnixTimeSeconds()).UtcDateTime;
        static string Subscription(string id, string extra) => """
            {"id":"SUB_ID","object":"subscription","customer":"cus_dated","status":"active","metadata":{"user_id":"user_ana"},EXTRA_FIELDS
             "items":{"object":"list","data":[{"id":"si_SUB_ID","price":{"id":"price_dated","nickname":"Dated","unit_amount":5000,"currency":"usd","recurring":{"interval":"month"}}}]}}
            """.Replace("SUB_ID", id, StringComparison.Ordinal).Replace("EXTRA_FIELDS", extra, StringComparison.Ordinal);
        // Stripe retried after Gymwire was down: the subscription started and ended days before they arrive.
        var startedAt = now.AddDays(-20);
        var endedAt = now.AddDays(-2);
        var dated = Subscription("sub_dated", $"\"start_date\":{startedAt.ToUnixTimeSeconds()},");
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_dated_1", "customer.subscription.created", dated, startedAt.AddSeconds(2)), secret))
            .AssertStatusAsync(HttpStatusCode.OK);
        var ended = Subscription("sub_dated", $"\"start_date\":{startedAt.ToUnixTimeSeconds()},\"canceled_at\":{now.AddDays(-9).ToUnixTimeSeconds()},\"ended_at\":{endedAt.ToUnixTimeSeconds()},")
            .Replace("\"active\"", "\"canceled\"", StringComparison.Ordinal);
        fx.Clock.Advance(TimeSpan.FromSeconds(1));
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_dated_2", "customer.subscription.deleted", ended, endedAt.AddSeconds(1)), secret))
            .AssertStatusAsync(HttpStatusCode.OK);

        // Without start_date or ended_at, the events' own times.
        var createdAt = now.AddDays(-5);
        var deletedAt = now.AddDays(-1);
        var plain = Subscription("sub_plain", "");
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_plain_1", "customer.subscription.created", plain, createdAt), secret)).AssertStatusAsync(HttpStatusCode.OK);
        await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_plain_2", "customer.subscription.deleted", plain, deletedAt), secret)).AssertStatusAsync(HttpStatusCode.OK);

        var memberships = (await (await gym.Owner().GetAsync("/api/gym/memberships")).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("memberships").EnumerateArray()
            .Select(m => (Started: m.GetProperty("started_at").GetDateTime().ToUniversalTime(), Canceled: m.GetProperty("canceled_at").GetDateTime().ToUniversalTime()))
            .OrderBy(m => m.Started).ToList();
        Assert.Equal([(Seconds(startedAt), Seconds(endedAt)), (Seconds(createdAt), Seconds(deletedAt))], memberships);
        Assert.Equal(["membership.activated", "membership.canceled", "membership.activated", "membership.canceled"], await EventTypesAsync(gym.GymId));
    }

    [Fact]
    public async Task Invoice_payments_seen_again_naming_another_invoice_nothing_refundable_or_an_overlong_id_change_nothing()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var now = fx.Clock.GetUtcNow();
        async Task<string?> OutcomeAsync(string eventId, string invoicePayment) =>
            (await (await DeliverAsync(gym.GymId, StripeSigner.Event(eventId, "invoice_payment.paid", invoicePayment, now, Basil), secret))
                .AssertStatusAsync(HttpStatusCode.OK)).GetProperty("outcome").GetString();

        Assert.Equal("recorded", await OutcomeAsync("evt_d1", StripeSigner.InvoicePayment("inpay_d", "in_d", 4900, "payment_intent", "pi_d")));
        Assert.Equal("already_recorded", await OutcomeAsync("evt_d2", StripeSigner.InvoicePayment("inpay_d", "in_d", 4900, "payment_intent", "pi_d")));
        // One payment intent can pay several invoices; a refund of it stays matched to the first.
        Assert.Equal("ignored", await OutcomeAsync("evt_d3", StripeSigner.InvoicePayment("inpay_e", "in_e", 100, "payment_intent", "pi_d")));
        // Paid outside Stripe (a payment record): nothing a charge.refunded could name.
        Assert.Equal("ignored", await OutcomeAsync("evt_d4", StripeSigner.InvoicePayment("inpay_f", "in_f", 4900, "payment_record", "prec_f")));
        Assert.Equal("ignored", await OutcomeAsync("evt_d5", """{"id":"inpay_g","object":"invoice_payment","payment":{"type":"payment_intent","payment_intent":"pi_g"}}"""));
        // Longer than the link keeps (Stripe allows ids of up to 255 characters); stored, PostgreSQL would refuse it.
        Assert.Equal("ignored", await OutcomeAsync("evt_d6", StripeSigner.InvoicePayment("inpay_h", "in_" + new string('h', 150), 4900, "payment_intent", "pi_h")));

        Assert.Equal(0, await fx.WithDbAsync(db => db.Payments.CountAsync(p => p.GymId == gym.GymId)));
        Assert.Empty(await EventTypesAsync(gym.GymId));
    }

    [Fact]
    public async Task Invoices_reusing_a_payment_intent_or_charge_are_recorded_and_a_refund_of_it_finds_the_first()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var now = fx.Clock.GetUtcNow();
        var logStart = fx.Logs.Lines.Count;
        static string Invoice(string id, string paymentIntent, string charge) =>
            StripeSigner.PaidInvoice(id, "cus_review", "ana@example.com", 1500, paymentIntent).Replace("\"payment_intent\"", $"\"charge\":\"{charge}\",\"payment_intent\"", StringComparison.Ordinal);
        async Task<JsonElement> DeliverInvoiceAsync(string eventId, string invoice) =>
            await (await DeliverAsync(gym.GymId, StripeSigner.Event(eventId, "invoice.paid", invoice, now), secret)).AssertStatusAsync(HttpStatusCode.OK);

        Assert.Equal("recorded", (await DeliverInvoiceAsync("evt_review1", Invoice("in_review1", "pi_review1", "ch_review1"))).GetProperty("outcome").GetString());
        Assert.Equal("recorded", (await DeliverInvoiceAsync("evt_review5", Invoice("in_review5", "pi_review1", "ch_review5"))).GetProperty("outcome").GetString());
        Assert.Equal("recorded", (await DeliverInvoiceAsync("evt_review6", Invoice("in_review6", "pi_review6", "ch_review1"))).GetProperty("outcome").GetString());

        var events = await (await gym.Owner().GetAsync("/api/gym/integrations/stripe/events")).AssertStatusAsync(HttpStatusCode.OK);
        var details = events.GetProperty("events").EnumerateArray().ToDictionary(e => e.GetProperty("stripe_event_id").GetString()!, e => e.GetProperty("detail").GetString()!);
        Assert.Equal(["evt_review1", "evt_review5", "evt_review6"], details.Keys.Order());
        Assert.Contains("pi_review1 (already tied to payment", details["evt_review5"], StringComparison.Ordinal);
        Assert.Contains("ch_review1 (already tied to payment", details["evt_review6"], StringComparison.Ordinal);
        Assert.Equal(3, await fx.WithDbAsync(db => db.Payments.CountAsync(p => p.GymId == gym.GymId)));

        // The charge stays the first invoice's: its refund refunds that payment.
        var refund = """{"id":"ch_review1","object":"charge","customer":"cus_review","payment_intent":"pi_review1","amount":1500,"amount_refunded":1500,"refunded":true}""";
        var ack = await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_review_refund", "charge.refunded", refund, now), secret)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("recorded", ack.GetProperty("outcome").GetString());
        var first = await fx.WithDbAsync(db => db.StripeLinks.Where(l => l.GymId == gym.GymId && l.Kind == "payment" && l.StripeId == "in_review1").Select(l => l.TargetId).SingleAsync());
        var refunded = await fx.WithDbAsync(db => db.Payments.Where(p => p.GymId == gym.GymId && p.Status == "refunded").Select(p => p.Id).ToListAsync());
        Assert.Equal([Guid.Parse(first)], refunded);
        fx.Logs.AssertNoErrorsSince(logStart);
    }

    [Fact]
    public async Task A_verified_event_the_database_cannot_store_is_kept_with_200_not_answered_500()
    {
        var (gym, secret) = await ConnectedGymAsync();
        // A currency longer than the payment's column: PostgreSQL refuses it on every try; SQLite does not check lengths.
        var invoice = StripeSigner.PaidInvoice("in_wide", "cus_wide", "ana@example.com", 1500, "pi_wide").Replace("\"usd\"", "\"usdx\"", StringComparison.Ordinal);
        var ack = await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_wide", "invoice.paid", invoice, fx.Clock.GetUtcNow()), secret)).AssertStatusAsync(HttpStatusCode.OK);
        var kept = await fx.WithDbAsync(db => db.StripeEvents.AsNoTracking().SingleAsync(e => e.GymId == gym.GymId && e.StripeEventId == "evt_wide"));
        Assert.Equal(kept.Outcome, ack.GetProperty("outcome").GetString());
        if (fx is PostgresGymwire)
        {
            Assert.Equal("ignored", kept.Outcome);
            Assert.Contains("could not record", kept.Detail, StringComparison.Ordinal);
            Assert.Equal(0, await fx.WithDbAsync(db => db.Payments.CountAsync(p => p.GymId == gym.GymId)));
        }
    }

    [Fact]
    public async Task On_2024_06_20_a_refund_is_still_matched_by_the_invoice_s_payment_intent_or_the_charge_s_invoice()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var now = fx.Clock.GetUtcNow();
        foreach (var (invoice, refund) in new[]
        {
            ("in_o1", """{"id":"ch_o1","object":"charge","customer":"cus_o","payment_intent":"pi_o1","amount":1000,"amount_refunded":1000,"refunded":true}"""),
            ("in_o2", """{"id":"ch_o2","object":"charge","customer":"cus_o","payment_intent":null,"invoice":"in_o2","amount":1000,"amount_refunded":1000,"refunded":true}"""),
        })
        {
            await (await DeliverAsync(gym.GymId, StripeSigner.Event($"evt_{invoice}", "invoice.paid",
                StripeSigner.PaidInvoice(invoice, "cus_o", "ana@example.com", 1000, "pi_" + invoice[3..]), now), secret)).AssertStatusAsync(HttpStatusCode.OK);
            var ack = await (await DeliverAsync(gym.GymId, StripeSigner.Event($"evt_r_{invoice}", "charge.refunded", refund, now), secret)).AssertStatusAsync(HttpStatusCode.OK);
            Assert.Equal("recorded", ack.GetProperty("outcome").GetString());
        }
        Assert.Equal(["refunded", "refunded"], await fx.WithDbAsync(db => db.Payments.Where(p => p.GymId == gym.GymId).Select(p => p.Status).ToListAsync()));
    }

    [Fact]
    public async Task Unknown_members_and_unknown_event_types_are_recorded_and_visible_not_dropped()
    {
        var (gym, secret) = await ConnectedGymAsync();
        var now = fx.Clock.GetUtcNow();
        var stranger = await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_u1", "invoice.paid",
            StripeSigner.PaidInvoice("in_u", "cus_stranger", "nobody@example.com", 4200, "pi_u"), now), secret)).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("unknown_member", stranger.GetProperty("outcome").GetString());
        var other = await (await DeliverAsync(gym.GymId, StripeSigner.Event("evt_u2", "product.created", """{"id":"prod_1","object":"product"}""", now), secret))
            .AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("ignored_unknown_type", other.GetProperty("outcome").GetString());

        var unknown = await (await gym.Owner().GetAsync("/api/gym/integrations/stripe/events?outcome=unknown_member")).AssertStatusAsync(HttpStatusCode.OK);
        var row = Assert.Single(unknown.GetProperty("events").EnumerateArray());
        Assert.Equal("cus_stranger", row.GetProperty("customer_id").GetString());
        Assert.Equal("nobody@example.com", row.GetProperty("email").GetString());
        Assert.Contains("42.00 usd", row.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(2, (await (await gym.Owner().GetAsync("/api/gym/integrations/stripe/events")).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("events").GetArrayLength());
        Assert.Empty(await EventTypesAsync(gym.GymId));
        Assert.Contains("matched no member", (await TileAsync(gym.GymId)).Reason, StringComparison.Ordinal);
        // The owner reads the reason on the dashboard: it points to the Payments page, not to an API call.
        using var browser = new Gymwire.Tests.Dashboard.DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        foreach (var path in new[] { "/settings/integrations", "/settings/integrations/payments" })
        {
            var page = await browser.GetPageAsync(path);
            Assert.Contains("1 event(s) matched no member: the Payments page lists the latest events and what became of each.", page, StringComparison.Ordinal);
            Assert.DoesNotContain("/api/gym/integrations/stripe/events", page, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task The_secret_is_set_by_the_owner_stored_encrypted_and_never_shown_again()
    {
        var gym = await fx.CreateGymAsync();
        Assert.Equal(IntegrationState.NotConnected, (await TileAsync(gym.GymId)).State);
        var secret = StripeSigner.NewSecret();
        var set = await (await gym.Owner().PutAsJsonAsync("/api/gym/integrations/stripe", new { endpoint_secret = secret })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.True(set.GetProperty("configured").GetBoolean());
        Assert.Equal(secret[^4..], set.GetProperty("secret_hint").GetString());
        Assert.Equal($"/api/integrations/stripe/webhook/{gym.GymId}", set.GetProperty("webhook_path").GetString());
        var status = await (await gym.Owner().GetAsync("/api/gym/integrations/stripe")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.DoesNotContain(secret, status.GetRawText(), StringComparison.Ordinal);
        var stored = await fx.WithDbAsync(db => db.StripeAccounts.Where(a => a.GymId == gym.GymId).Select(a => a.ProtectedEndpointSecret).SingleAsync());
        Assert.DoesNotContain(secret, stored, StringComparison.Ordinal);
        Assert.DoesNotContain(secret[6..], stored, StringComparison.Ordinal);

        Assert.Contains("whsec_", await (await gym.Owner().PutAsJsonAsync("/api/gym/integrations/stripe", new { endpoint_secret = "sk_live_nope" }))
            .AssertErrorAsync(HttpStatusCode.BadRequest), StringComparison.Ordinal);
        // Stripe's secrets are ASCII: anything else is a paste gone wrong (an emoji among the last four characters once made
        // the hint half a character, which PostgreSQL refused with a 500).
        foreach (var pasted in new[] { "whsec_aaaaaaaaaa\U0001F600abc", "whsec_aaaaaaaaaa\u00e9" })
        {
            Assert.Contains("whsec_", await (await gym.Owner().PutAsJsonAsync("/api/gym/integrations/stripe", new { endpoint_secret = pasted }))
                .AssertErrorAsync(HttpStatusCode.BadRequest), StringComparison.Ordinal);
        }
        Assert.Equal(secret[^4..], (await (await gym.Owner().GetAsync("/api/gym/integrations/stripe")).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("secret_hint").GetString());
        var key = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "k", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        await (await fx.Client(key.GetProperty("key").GetString()).GetAsync("/api/gym/integrations/stripe")).AssertErrorAsync(HttpStatusCode.Forbidden);

        await (await gym.Owner().DeleteAsync("/api/gym/integrations/stripe")).AssertStatusAsync(HttpStatusCode.NoContent);
        Assert.False((await (await gym.Owner().GetAsync("/api/gym/integrations/stripe")).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("configured").GetBoolean());
        Assert.Equal(IntegrationState.NotConnected, (await TileAsync(gym.GymId)).State);
        _ = typeof(StripeAccount);
    }
}
