using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Foundation;

/// <summary>Every error from every layer is {"error": "..."} with the right status, and changes nothing.</summary>
public abstract class ErrorShapeTests(GymwireFixture fx)
{
    public sealed class Sqlite(ThrowingSqlite f) : ErrorShapeTests(f), IClassFixture<ThrowingSqlite>;
    public sealed class Postgres(ThrowingPostgres f) : ErrorShapeTests(f), IClassFixture<ThrowingPostgres>;

    public const string SecretInException = "connection=secret-value-in-exception";

    [Fact]
    public async Task Unknown_route_is_404()
    {
        var gym = await fx.CreateGymAsync();
        await (await gym.Owner().GetAsync("/api/nope")).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await fx.Client().GetAsync("/nope")).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await gym.Owner().GetAsync("/api/gym/members/not-a-guid")).AssertErrorAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Wrong_method_is_405()
    {
        var gym = await fx.CreateGymAsync();
        await (await gym.Owner().PutAsync("/api/gym/members", null)).AssertErrorAsync(HttpStatusCode.MethodNotAllowed);
        await (await fx.Client().DeleteAsync("/healthz")).AssertErrorAsync(HttpStatusCode.MethodNotAllowed);
    }

    [Theory]
    [InlineData("{\"name\": \"x\"", "Malformed JSON")]
    [InlineData("not json", "Malformed JSON")]
    [InlineData("[1,2]", "must be an object")]
    [InlineData("{\"name\": 5}", "'name' has the wrong type (expected string)")]
    [InlineData("{\"name\": \"Al\", \"email\": true}", "'email' has the wrong type (expected string)")]
    [InlineData("{\"email\": \"a@example.com\"}", "'name' is required")]
    [InlineData("{\"name\": \"Al\", \"email\": \"nope\"}", "'email' must be a valid email")]
    [InlineData("{\"name\": \"Al\", \"phone\": \"555-1234\"}", "E.164")]
    [InlineData("{\"name\": \"Al\", \"role\": \"admin\"}", "'role' must be one of: member, coach")]
    [InlineData("{\"name\": \"Al\", \"user_id\": \"has space\"}", "'user_id'")]
    public async Task Malformed_bodies_get_400_naming_the_problem_and_create_nothing(string body, string expected)
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var message = await (await owner.PostRawAsync("/api/gym/members", body)).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains(expected, message, StringComparison.Ordinal);
        Assert.Equal(0, await fx.WithDbAsync(db => db.Members.CountAsync(m => m.GymId == gym.GymId)));
        Assert.Equal(0, await fx.WithDbAsync(db => db.OutboxEvents.CountAsync(e => e.GymId == gym.GymId)));
    }

    [Fact]
    public async Task Deeply_nested_json_is_400()
    {
        var gym = await fx.CreateGymAsync();
        var body = "{\"name\": \"x\", \"extra\": " + new string('[', 200) + new string(']', 200) + "}";
        await (await gym.Owner().PostRawAsync("/api/gym/members", body)).AssertErrorAsync(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Invalid_utf8_is_400()
    {
        var gym = await fx.CreateGymAsync();
        var content = new ByteArrayContent([(byte)'{', (byte)'"', (byte)'n', (byte)'a', (byte)'m', (byte)'e', (byte)'"', (byte)':', (byte)'"', 0xC3, 0x28, (byte)'"', (byte)'}']);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        await (await gym.Owner().PostAsync("/api/gym/members", content)).AssertErrorAsync(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Missing_body_and_wrong_content_type_are_rejected()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        await (await owner.PostAsync("/api/gym/members", new StringContent("", System.Text.Encoding.UTF8, "application/json"))).AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await owner.PostRawAsync("/api/gym/members", "{\"name\":\"x\"}", "text/plain")).AssertErrorAsync(HttpStatusCode.UnsupportedMediaType);
    }

    [Fact]
    public async Task Oversized_body_is_413()
    {
        var gym = await fx.CreateGymAsync();
        var body = "{\"name\": \"" + new string('a', 2 * 1024 * 1024) + "\"}";
        // Expect: 100-continue, as clients sending large bodies do: the refusal comes before the body, so the client
        // reads it instead of finding the connection closed while it still writes.
        using var owner = gym.Owner();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/gym/members") { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
        request.Headers.ExpectContinue = true;
        await (await owner.SendAsync(request)).AssertErrorAsync(HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal(0, await fx.WithDbAsync(db => db.Members.CountAsync(m => m.GymId == gym.GymId)));
    }

    [Fact]
    public async Task Bad_query_parameters_are_400()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        Assert.Contains("'limit'", await (await owner.GetAsync("/api/gym/members?limit=abc")).AssertErrorAsync(HttpStatusCode.BadRequest), StringComparison.Ordinal);
        Assert.Contains("'limit'", await (await owner.GetAsync("/api/gym/members?limit=100000")).AssertErrorAsync(HttpStatusCode.BadRequest), StringComparison.Ordinal);
        await (await owner.GetAsync("/api/gym/members?offset=-1")).AssertErrorAsync(HttpStatusCode.BadRequest);
    }

    /// <summary>Each request's duration, with its tags, as an exporter would read it from this server's meters.</summary>
    private MeterListener RequestDurations(Action<KeyValuePair<string, object?>[]> seen)
    {
        var factory = fx.Services.GetRequiredService<IMeterFactory>();
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Scope == factory && instrument.Name == "http.server.request.duration")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<double>((_, _, tags, _) => seen(tags.ToArray()));
        listener.Start();
        return listener;
    }

    [Fact]
    public async Task Unhandled_exception_is_a_generic_500_logged_once_and_not_leaked_and_its_type_is_on_the_request_metric()
    {
        var errorTypes = new ConcurrentQueue<string?>();
        using var listener = RequestDurations(tags =>
        {
            // This class's tests run one at a time on a server of their own: the only 500 is this request's.
            if (tags.Any(t => t.Key == "http.response.status_code" && Equals(t.Value, 500)))
            {
                errorTypes.Enqueue(tags.FirstOrDefault(t => t.Key == "error.type").Value as string);
            }
        });
        var start = fx.Logs.Lines.Count;

        var response = await fx.Client().GetAsync("/test/throw");
        var message = await response.AssertErrorAsync(HttpStatusCode.InternalServerError);
        Assert.Equal("Internal server error", message);
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("secret", body, StringComparison.Ordinal);
        // A request's duration is recorded after its response has reached the client.
        await Eventually.TrueAsync(() => Task.FromResult(!errorTypes.IsEmpty), what: "the request's duration recorded");
        Assert.Equal("System.InvalidOperationException", Assert.Single(errorTypes));
        var logged = fx.Logs.ErrorsSince(start);
        Assert.True(logged.Count == 1, string.Join('\n', logged));
        Assert.Contains(SecretInException, logged[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_that_goes_away_mid_request_is_not_logged_as_an_error()
    {
        var statuses = new ConcurrentQueue<object?>();
        using var listener = RequestDurations(tags =>
        {
            if (tags.Any(t => t.Key == "http.route" && Equals(t.Value, "/test/wait")))
            {
                statuses.Enqueue(tags.FirstOrDefault(t => t.Key == "http.response.status_code").Value);
            }
        });
        var start = fx.Logs.Lines.Count;

        using var going = new CancellationTokenSource();
        var request = fx.Client().GetAsync("/test/wait", going.Token);
        await ((ThrowingFixture)fx).Waiting.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await going.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);

        // The request's duration is recorded once the server has finished with it, its exception handled.
        await Eventually.TrueAsync(() => Task.FromResult(!statuses.IsEmpty), what: "the aborted request's duration recorded");
        Assert.Equal(499, Assert.Single(statuses));
        var logged = fx.Logs.ErrorsSince(start);
        Assert.True(logged.Count == 0, string.Join('\n', logged));
    }
}

public sealed class ThrowingSqlite() : ThrowingFixture(Store.Sqlite);

public sealed class ThrowingPostgres() : ThrowingFixture(Store.Postgres);

public abstract class ThrowingFixture(Store store) : GymwireFixture(store)
{
    /// <summary>Set once <c>/test/wait</c> has its request.</summary>
    public TaskCompletionSource Waiting { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    protected override void ConfigureApp(WebApplication app)
    {
        app.MapGet("/test/throw", string () => throw new InvalidOperationException(ErrorShapeTests.SecretInException));
        // Waits until the client goes away, then throws as any endpoint's awaited work does when its request is aborted.
        app.MapGet("/test/wait", async (Microsoft.AspNetCore.Http.HttpContext context) =>
        {
            Waiting.TrySetResult();
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        });
    }
}
