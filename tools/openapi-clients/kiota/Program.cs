// Calls a live Gymwire through the client Kiota generated from its /openapi.json: a trigger and an action.
// Usage: KiotaConsumer BASE_URL API_KEY. Prints one line per call for the test to check.
using Gymwire.Generated;
using Gymwire.Generated.Api.Zapier.Actions;
using Gymwire.Generated.Api.Zapier.Triggers;
using Microsoft.Kiota.Abstractions.Authentication;
using Microsoft.Kiota.Http.HttpClientLibrary;

var (baseUrl, key) = (args[0], args[1]);
var adapter = new HttpClientRequestAdapter(new BaseBearerTokenAuthenticationProvider(new StaticToken(key))) { BaseUrl = baseUrl };
var client = new GymwireApiClient(adapter);

// The items are anyOf the four trigger shapes. Kiota reads each field into the first shape that has it, so the
// fields the shapes share (id, user_id) are in the first shape (TriggersMember1), the others in their own.
var members = await client.Api.Zapier.Triggers.GetAsync(c => c.QueryParameters.Type = GetTypeQueryParameterType.New_member);
foreach (var item in members ?? [])
{
    Console.WriteLine($"member {item.TriggersMember1?.UserId} {item.TriggersMember1?.JoinedAt:O}");
}
var payments = await client.Api.Zapier.Triggers.GetAsync(c => c.QueryParameters.Type = GetTypeQueryParameterType.New_payment);
foreach (var item in payments ?? [])
{
    Console.WriteLine($"payment {item.TriggersMember1?.UserId} {item.TriggersMember2?.AmountCents} {item.TriggersMember2?.Status}");
}

var lead = await client.Api.Zapier.Actions.PostAsync(
    new ActionsRequestBuilder.ActionsPostRequestBody { ActionsPostRequestBodyMember1 = new ActionsPostRequestBodyMember1 { FirstName = "Kiota", Source = "generated-csharp" } },
    c => c.QueryParameters.Type = PostTypeQueryParameterType.Create_lead);
Console.WriteLine($"lead {lead?.ActionsPostResponseMember1?.Id} {lead?.ActionsPostResponseMember1?.FirstName} {lead?.ActionsPostResponseMember1?.Source}");

internal sealed class StaticToken(string token) : IAccessTokenProvider
{
    public AllowedHostsValidator AllowedHostsValidator { get; } = new();

    public Task<string> GetAuthorizationTokenAsync(Uri uri, Dictionary<string, object>? additionalAuthenticationContext = null, CancellationToken cancellationToken = default) =>
        Task.FromResult(token);
}
