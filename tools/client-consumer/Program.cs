// Uses Gymwire.Client, trimmed (reflection-based JSON is off in a trimmed app): a trigger, an action, an error
// answer, the key's webhooks, and a webhook delivery verified and parsed.
// Usage: ClientConsumer BASE_URL API_KEY WEBHOOK_SECRET DELIVERY_DIR (DELIVERY_DIR holds `body` and `headers`,
// one "name: value" a line). Prints one line per check for the test to read.
using System.Net;
using Gymwire.Client;

var (baseUrl, key, secret, delivery) = (args[0], args[1], args[2], args[3]);
using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
var client = new GymwireClient(http, key);

var me = await client.GetMeAsync();
Console.WriteLine($"me {me.Actor} {string.Join(',', me.Scopes)}");
foreach (var member in await client.GetNewMembersAsync())
{
    Console.WriteLine($"member {member.UserId} {member.JoinedAt:O}");
}
var lead = await client.CreateLeadAsync(new CreateLead("Trimmed", Source: "trimmed-app"), idempotencyKey: "trimmed-1");
Console.WriteLine($"lead {lead.Id} {lead.FirstName} {lead.Source}");
try
{
    await new GymwireClient(http, "cs_" + new string('0', 64)).GetMeAsync();
}
catch (GymwireApiException e) when (e.StatusCode == HttpStatusCode.Unauthorized)
{
    Console.WriteLine($"error 401 {e.Message.Length > 0}");
}

foreach (var hook in await client.ListWebhooksAsync())
{
    Console.WriteLine($"listed {hook.Url} {hook.IsActive} {hook.SwitchedOffByOwner} {hook.ApiKeyId} {hook.DisabledAt is not null} {hook.Description}");
}

var body = File.ReadAllBytes(Path.Combine(delivery, "body"));
var headers = File.ReadAllLines(Path.Combine(delivery, "headers"))
    .Select(line => line.Split(": ", 2))
    .Select(parts => KeyValuePair.Create(parts[0], parts[1]))
    .ToList();
// The delivery is stamped with the server's test clock: judge the signature, not this machine's time.
var verifier = new WebhookVerifier(secret, tolerance: TimeSpan.FromDays(3650));
var tampered = (byte[])body.Clone();
tampered[^2] ^= 1;
var parsed = WebhookEvent.Parse(body);
Console.WriteLine($"webhook {verifier.Verify(headers, body)} {verifier.Verify(headers, tampered)} {parsed.Event} {parsed.IsTest} {WebhookVerifier.IsTestDelivery(headers)}");
