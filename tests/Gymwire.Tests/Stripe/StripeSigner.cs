using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Gymwire.Tests.Stripe;

/// <summary>Signs a payload exactly as Stripe does: <c>t=&lt;unix&gt;,v1=&lt;hex HMAC-SHA256 of "{t}.{payload}"&gt;</c>.</summary>
public static class StripeSigner
{
    public static string Sign(string payload, string secret, DateTimeOffset at)
    {
        var t = at.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        var mac = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes($"{t}.{payload}"));
        return $"t={t},v1={Convert.ToHexStringLower(mac)}";
    }

    public static string NewSecret() => "whsec_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));

    /// <summary>A Stripe event envelope around <paramref name="obj"/>, as an endpoint on <paramref name="apiVersion"/> receives it.</summary>
    public static string Event(string id, string type, string obj, DateTimeOffset created, string apiVersion = "2024-06-20") =>
        "{\"id\":\"" + id + "\",\"object\":\"event\",\"api_version\":\"" + apiVersion + "\",\"created\":" + created.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)
        + ",\"livemode\":false,\"pending_webhooks\":1,\"request\":{\"id\":null,\"idempotency_key\":null},\"type\":\"" + type + "\",\"data\":{\"object\":" + obj + "}}";

    public static string PaidInvoice(string id, string customer, string? email, int amount, string paymentIntent, string? userId = null, string? subscription = null) =>
        "{\"id\":\"" + id + "\",\"object\":\"invoice\",\"customer\":\"" + customer + "\",\"customer_email\":" + Json(email)
        + ",\"amount_due\":" + amount.ToString(CultureInfo.InvariantCulture) + ",\"amount_paid\":" + amount.ToString(CultureInfo.InvariantCulture)
        + ",\"currency\":\"usd\",\"status\":\"paid\",\"payment_intent\":\"" + paymentIntent + "\",\"subscription\":" + Json(subscription)
        + ",\"metadata\":{" + (userId is null ? "" : "\"user_id\":\"" + userId + "\"") + "}}";

    /// <summary>
    /// A paid invoice as API version 2025-03-31.basil and later send it: no <c>payment_intent</c> or <c>charge</c>, and
    /// the subscription (with its metadata) under <c>parent.subscription_details</c>.
    /// </summary>
    public static string BasilPaidInvoice(string id, string customer, string? email, int amount, string subscription, string? userId = null) =>
        "{\"id\":\"" + id + "\",\"object\":\"invoice\",\"customer\":\"" + customer + "\",\"customer_email\":" + Json(email)
        + ",\"amount_due\":" + amount.ToString(CultureInfo.InvariantCulture) + ",\"amount_paid\":" + amount.ToString(CultureInfo.InvariantCulture)
        + ",\"currency\":\"usd\",\"status\":\"paid\",\"parent\":{\"type\":\"subscription_details\",\"quote_details\":null,\"subscription_details\":{\"subscription\":\"" + subscription
        + "\",\"metadata\":{" + (userId is null ? "" : "\"user_id\":\"" + userId + "\"") + "}}},\"metadata\":{}}";

    /// <summary>
    /// An InvoicePayment (2025-03-31.basil and later), the object of <c>invoice_payment.paid</c>: the invoice and the
    /// payment intent or charge that paid it, under <c>payment</c> with its <c>type</c>.
    /// </summary>
    public static string InvoicePayment(string id, string invoice, int amount, string paidWith, string paymentId) =>
        "{\"id\":\"" + id + "\",\"object\":\"invoice_payment\",\"amount_paid\":" + amount.ToString(CultureInfo.InvariantCulture)
        + ",\"amount_requested\":" + amount.ToString(CultureInfo.InvariantCulture) + ",\"currency\":\"usd\",\"invoice\":\"" + invoice
        + "\",\"is_default\":true,\"livemode\":false,\"payment\":{\"type\":\"" + paidWith + "\",\"" + paidWith + "\":\"" + paymentId
        + "\"},\"status\":\"paid\",\"status_transitions\":{\"canceled_at\":null,\"paid_at\":1776340800}}";

    private static string Json(string? value) => value is null ? "null" : $"\"{value}\"";
}
