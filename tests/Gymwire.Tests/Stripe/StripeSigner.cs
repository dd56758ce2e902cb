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

    /// <summary>A Stripe event envelope (API version 2024-06-20 shape) around <paramref name="obj"/>.</summary>
    public static string Event(string id, string type, string obj, DateTimeOffset created) =>
        "{\"id\":\"" + id + "\",\"object\":\"event\",\"api_version\":\"2024-06-20\",\"created\":" + created.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)
        + ",\"livemode\":false,\"pending_webhooks\":1,\"request\":{\"id\":null,\"idempotency_key\":null},\"type\":\"" + type + "\",\"data\":{\"object\":" + obj + "}}";

    public static string PaidInvoice(string id, string customer, string? email, int amount, string paymentIntent, string? userId = null, string? subscription = null) =>
        "{\"id\":\"" + id + "\",\"object\":\"invoice\",\"customer\":\"" + customer + "\",\"customer_email\":" + Json(email)
        + ",\"amount_due\":" + amount.ToString(CultureInfo.InvariantCulture) + ",\"amount_paid\":" + amount.ToString(CultureInfo.InvariantCulture)
        + ",\"currency\":\"usd\",\"status\":\"paid\",\"payment_intent\":\"" + paymentIntent + "\",\"subscription\":" + Json(subscription)
        + ",\"metadata\":{" + (userId is null ? "" : "\"user_id\":\"" + userId + "\"") + "}}";

    private static string Json(string? value) => value is null ? "null" : $"\"{value}\"";
}
