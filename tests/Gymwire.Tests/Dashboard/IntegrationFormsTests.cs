using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.RegularExpressions;
using Gymwire.Features.Stripe;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Stripe;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Dashboard;

/// <summary>The integration pages' forms through real HTTP: Stripe's secret, the scheduled report, SMS and email, the Zapier tile.</summary>
public abstract class IntegrationFormsTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : IntegrationFormsTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : IntegrationFormsTests(f), IClassFixture<PostgresGymwire>;

    private async Task<(TestGym Gym, DashboardClient Browser)> SignedInAsync()
    {
        var gym = await fx.CreateGymAsync();
        var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        return (gym, browser);
    }

    [Fact]
    public async Task Stripe_secret_is_validated_stored_encrypted_shown_by_its_last_four_and_removed()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var page = await browser.GetPageAsync("/settings/integrations/payments");
        Assert.Contains($"{fx.BaseAddress.GetLeftPart(UriPartial.Authority)}/api/integrations/stripe/webhook/{gym.GymId}", page, StringComparison.Ordinal);
        Assert.Contains("No Stripe events received yet.", page, StringComparison.Ordinal);

        var bad = await browser.SubmitAsync("/settings/integrations/payments?handler=Save", ("Secret", "sk_live_not_a_signing_secret"));
        Assert.Equal(HttpStatusCode.OK, bad.StatusCode);
        Assert.Contains("The signing secret must be the webhook endpoint&#x27;s signing secret from Stripe", await bad.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(await fx.WithDbAsync(db => db.StripeAccounts.AnyAsync(a => a.GymId == gym.GymId)));

        const string secret = "whsec_dashboardFormSecret1234";
        var saved = await browser.SubmitAsync("/settings/integrations/payments?handler=Save", ("Secret", secret));
        Assert.Equal("/settings/integrations/payments", saved.Headers.Location!.OriginalString);
        var after = WebUtility.HtmlDecode(await (await browser.FollowAsync(saved)).Content.ReadAsStringAsync());
        Assert.Contains("Stripe signing secret saved (ending …1234)", after, StringComparison.Ordinal);
        Assert.Contains("<code>…1234</code>", after, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, after, StringComparison.Ordinal);
        var account = await fx.WithDbAsync(db => db.StripeAccounts.AsNoTracking().SingleAsync(a => a.GymId == gym.GymId));
        Assert.DoesNotContain(secret, account.ProtectedEndpointSecret, StringComparison.Ordinal);
        Assert.Equal(secret, fx.Services.GetRequiredService<StripeSecrets>().Unprotect(gym.GymId, account.ProtectedEndpointSecret));
        Assert.DoesNotContain(fx.Logs.Lines, l => l.Contains(secret, StringComparison.Ordinal));
        using (var owner = gym.Owner())
        {
            var api = await (await owner.GetAsync("/api/gym/integrations/stripe")).AssertStatusAsync(HttpStatusCode.OK);
            Assert.True(api.GetProperty("configured").GetBoolean());
        }

        var removed = await browser.SubmitAsync("/settings/integrations/payments?handler=Remove");
        Assert.Contains("Stripe disconnected", await (await browser.FollowAsync(removed)).Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(await fx.WithDbAsync(db => db.StripeAccounts.AnyAsync(a => a.GymId == gym.GymId)));
    }

    [Fact]
    public async Task Payments_page_asks_for_every_Stripe_event_that_Gymwire_handles()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var page = await browser.GetPageAsync("/settings/integrations/payments");
        var list = Regex.Match(page, "<span id=\"stripe-event-types\">(.*?)</span>", RegexOptions.Singleline).Groups[1].Value;
        var listed = Regex.Matches(list, "<code>([^<]+)</code>").Select(m => m.Groups[1].Value).ToList();
        Assert.Contains("customer.created", listed);
        Assert.Contains("customer.updated", listed);
        // Every handled type but invoice.payment_succeeded, which Stripe sends beside invoice.paid for one payment.
        Assert.Equal(StripeEventMapper.HandledTypes.Where(t => t != "invoice.payment_succeeded").Order(), listed.Order());

        // And Gymwire does handle each: none is kept as a type it ignores.
        var secret = StripeSigner.NewSecret();
        using var owner = gym.Owner();
        await (await owner.PutAsJsonAsync("/api/gym/integrations/stripe", new { endpoint_secret = secret })).AssertStatusAsync(HttpStatusCode.OK);
        using var stripe = fx.Client();
        foreach (var (type, i) in listed.Select((t, i) => (t, i)))
        {
            var payload = StripeSigner.Event($"evt_listed_{i}", type, $$"""{"id":"obj_{{i}}","object":"{{type.Split('.')[0]}}","customer":"cus_listed"}""", fx.Clock.GetUtcNow());
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/integrations/stripe/webhook/{gym.GymId}") { Content = new StringContent(payload, Encoding.UTF8, "application/json") };
            request.Headers.TryAddWithoutValidation("Stripe-Signature", StripeSigner.Sign(payload, secret, fx.Clock.GetUtcNow()));
            await (await stripe.SendAsync(request)).AssertStatusAsync(HttpStatusCode.OK);
        }
        var kept = await fx.WithDbAsync(db => db.StripeEvents.Where(e => e.GymId == gym.GymId).Select(e => new { e.Type, e.Outcome }).ToListAsync());
        Assert.Equal(listed.Order(), kept.Select(e => e.Type).Order());
        Assert.DoesNotContain(kept, e => e.Outcome == StripeOutcomes.IgnoredUnknownType);
    }

    [Fact]
    public async Task Scheduled_report_form_explains_that_the_server_cannot_email_and_turns_off()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var page = await browser.GetPageAsync("/settings/integrations/accounting");
        Assert.Contains("This server cannot send email yet, so scheduled reports are not available.", page, StringComparison.Ordinal);
        var refused = await browser.SubmitAsync("/settings/integrations/accounting", ("Frequency", "weekly"));
        Assert.Equal(HttpStatusCode.OK, refused.StatusCode);
        Assert.Contains("This server cannot send email, so reports cannot be emailed.", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(await fx.WithDbAsync(db => db.ReportSchedules.AnyAsync(s => s.GymId == gym.GymId)));
        var bogus = await browser.SubmitAsync("/settings/integrations/accounting", ("Frequency", "hourly"));
        Assert.Contains("Choose daily, weekly, monthly or off.", await bogus.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        await fx.WithDbAsync(db =>
        {
            db.ReportSchedules.Add(new Gymwire.Features.Email.ReportSchedule { GymId = gym.GymId, Frequency = "monthly", ReportedThrough = new DateTime(2026, 4, 1, 0, 0, 0, DateTimeKind.Utc) });
            return db.SaveChangesAsync();
        });
        Assert.Contains("id=\"frequency-monthly\" name=\"Frequency\" value=\"monthly\" checked", await browser.GetPageAsync("/settings/integrations/accounting"), StringComparison.Ordinal);
        var off = await browser.SubmitAsync("/settings/integrations/accounting", ("Frequency", "off"));
        Assert.Contains("Scheduled reports are off.", await (await browser.FollowAsync(off)).Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(await fx.WithDbAsync(db => db.ReportSchedules.AnyAsync(s => s.GymId == gym.GymId)));
        // Audited like saving a schedule and disconnecting Stripe.
        var logged = $"Information Gymwire.Features.Dashboard.Settings.AccountingIntegrationModel: Dashboard turned off the scheduled report of gym {gym.GymId}";
        Assert.Contains(fx.Logs.Lines, l => l.StartsWith(logged, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Sms_and_email_pages_say_plainly_what_the_server_has_and_show_no_configuration_keys()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        await fx.WithDbAsync(db =>
        {
            db.SmsMessages.Add(new Gymwire.Features.Sms.SmsMessage { Id = Guid.CreateVersion7(), GymId = gym.GymId, Phone = "+15550100199", Message = "Class moved to 7pm", Status = "queued", CreatedAt = now });
            // What Twilio's status callbacks make of sent messages: reached the phone, and refused by the carrier.
            db.SmsMessages.Add(new Gymwire.Features.Sms.SmsMessage { Id = Guid.CreateVersion7(), GymId = gym.GymId, Phone = "+15550100198", Message = "See you Monday", Status = "delivered", CreatedAt = now });
            db.SmsMessages.Add(new Gymwire.Features.Sms.SmsMessage
            {
                Id = Guid.CreateVersion7(), GymId = gym.GymId, Phone = "+15550100197", Message = "Welcome", Status = "undelivered", CreatedAt = now,
                Error = "Twilio reported it undelivered (error 30003)",
            });
            return db.SaveChangesAsync();
        });
        var sms = await browser.GetPageAsync("/settings/integrations/sms");
        Assert.Contains("No: this Gymwire server has no text-message provider yet", sms, StringComparison.Ordinal);
        Assert.Contains("Class moved to 7pm", sms, StringComparison.Ordinal);
        Assert.Contains("<span class=\"badge connected\">delivered</span>", sms, StringComparison.Ordinal);
        Assert.Contains("<span class=\"badge error\">undelivered</span>", sms, StringComparison.Ordinal);
        Assert.Contains("<span class=\"hint\"> Twilio reported it undelivered (error 30003)</span>", sms, StringComparison.Ordinal);
        Assert.DoesNotContain("+15550100199", sms, StringComparison.Ordinal);
        var email = await browser.GetPageAsync("/settings/integrations/email");
        Assert.Contains("No: this Gymwire server cannot send email yet", email, StringComparison.Ordinal);
        foreach (var html in new[] { sms, email })
        {
            // The guide that covers it, not the operations guide (which does not).
            Assert.Contains("Gymwire's configuration guide (<code>docs/configuration.md</code>", html.Replace("&#x27;", "'", StringComparison.Ordinal), StringComparison.Ordinal);
            Assert.DoesNotContain("operations guide", html, StringComparison.Ordinal);
            Assert.DoesNotContain("Sms:", html, StringComparison.Ordinal);
            Assert.DoesNotContain("Email:", html, StringComparison.Ordinal);
            Assert.DoesNotContain("Twilio:", html, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Zapier_tile_is_connected_only_once_a_key_has_been_used_recently()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        string key;
        using (var owner = gym.Owner())
        {
            key = (await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Zap", scopes = new[] { "read" } })).AssertStatusAsync(HttpStatusCode.Created))
                .GetProperty("key").GetString()!;
        }
        var unused = await browser.GetPageAsync("/settings/integrations/automation");
        Assert.Contains("<span class=\"badge not-connected\">Not Connected</span>", unused, StringComparison.Ordinal);
        Assert.Contains("Nothing has used an API key or a webhook in the last 30 days", unused, StringComparison.Ordinal);

        using (var zapier = fx.Client(key))
        {
            await (await zapier.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        }
        var used = await browser.GetPageAsync("/settings/integrations/automation");
        Assert.Contains("<span class=\"badge connected\">Connected</span>", used, StringComparison.Ordinal);
        Assert.Contains("1 API key used in the last 30 days.", used, StringComparison.Ordinal);

        // Last used 31 days ago: no longer connected.
        var monthAgo = fx.Clock.GetUtcNow().UtcDateTime.AddDays(-31);
        await fx.WithDbAsync(db => db.ApiKeys.Where(k => k.GymId == gym.GymId).ExecuteUpdateAsync(k => k.SetProperty(x => x.LastUsedAt, monthAgo)));
        Assert.Contains("<span class=\"badge not-connected\">Not Connected</span>", await browser.GetPageAsync("/settings/integrations/automation"), StringComparison.Ordinal);
    }
}
