using Gymwire.Features.Webhooks;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Gymwire.Tests.Webhooks;

/// <summary>Each decision of <see cref="EndpointPolicy"/>, on a fake clock: no HTTP, no database.</summary>
public sealed class EndpointPolicyTests
{
    private static readonly TimeSpan Quick = TimeSpan.FromMilliseconds(30);
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 4, 16, 12, 0, 0, TimeSpan.Zero));
    private readonly Guid _endpoint = Guid.NewGuid();

    private EndpointPolicy Policy(int perEndpoint = 8, int threshold = 5) => new(Options.Create(new WebhookOptions
    {
        MaxConcurrentPerEndpoint = perEndpoint,
        FailingEndpointThreshold = threshold,
        FailingEndpointMaxPause = TimeSpan.FromSeconds(4),
        SlowAttempt = TimeSpan.FromSeconds(2),
        Timeout = TimeSpan.FromSeconds(10),
    }), _clock, NullLogger<EndpointPolicy>.Instance);

    private DateTime Now => _clock.GetUtcNow().UtcDateTime;

    private static void Admit(EndpointPolicy policy, Guid endpoint, int times)
    {
        for (var i = 0; i < times; i++)
        {
            Assert.Equal(Admission.Go, policy.Admit(endpoint));
        }
    }

    [Fact]
    public void An_endpoint_gets_at_most_its_cap_in_flight_and_a_slot_back_for_each_that_ends()
    {
        var policy = Policy(perEndpoint: 3);
        Admit(policy, _endpoint, 3);
        Assert.Equal(Admission.AtCap, policy.Admit(_endpoint));
        Assert.Equal(new[] { _endpoint }, policy.Closed());
        // Other endpoints are not limited by it.
        Assert.Equal(Admission.Go, policy.Admit(Guid.NewGuid()));

        Assert.Equal(new EndpointDecision(3, null), policy.Observe(_endpoint, delivered: true, Quick));
        Assert.DoesNotContain(_endpoint, policy.Closed());
        Assert.Equal(Admission.Go, policy.Admit(_endpoint));
        policy.Release(_endpoint);
        Assert.Equal(Admission.Go, policy.Admit(_endpoint));
    }

    [Fact]
    public void A_slow_attempt_limits_its_endpoint_to_one_in_flight_until_one_is_quick()
    {
        var policy = Policy();
        Admit(policy, _endpoint, 4);
        Assert.Equal(1, policy.Observe(_endpoint, delivered: true, TimeSpan.FromSeconds(2)).Cap);
        // Three still in flight: none more until they are down to none.
        Assert.Equal(Admission.AtCap, policy.Admit(_endpoint));
        policy.Observe(_endpoint, delivered: false, TimeSpan.FromSeconds(10));
        policy.Observe(_endpoint, delivered: false, TimeSpan.FromSeconds(10));
        Assert.Equal(Admission.AtCap, policy.Admit(_endpoint));
        Assert.Equal(1, policy.Observe(_endpoint, delivered: false, TimeSpan.FromSeconds(10)).Cap);
        Assert.Equal(Admission.Go, policy.Admit(_endpoint));
        Assert.Equal(Admission.AtCap, policy.Admit(_endpoint));

        // A quick answer, failed or not, lifts the limit.
        Assert.Equal(8, policy.Observe(_endpoint, delivered: false, Quick).Cap);
        Admit(policy, _endpoint, 8);
    }

    [Fact]
    public void A_timeout_shorter_than_the_slow_threshold_still_counts_as_slow()
    {
        var policy = new EndpointPolicy(Options.Create(new WebhookOptions { Timeout = TimeSpan.FromSeconds(1), SlowAttempt = TimeSpan.FromSeconds(2) }),
            _clock, NullLogger<EndpointPolicy>.Instance);
        Admit(policy, _endpoint, 1);
        Assert.Equal(1, policy.Observe(_endpoint, delivered: false, TimeSpan.FromMilliseconds(990)).Cap);
    }

    [Fact]
    public void Failing_threshold_times_in_a_row_pauses_the_endpoint_and_each_failed_probe_doubles_the_pause_up_to_the_maximum()
    {
        var policy = Policy(threshold: 3);
        Admit(policy, _endpoint, 4);
        Assert.Equal(new EndpointDecision(8, null), policy.Observe(_endpoint, delivered: false, Quick));
        Assert.Equal(new EndpointDecision(8, null), policy.Observe(_endpoint, delivered: false, Quick));
        var paused = policy.Observe(_endpoint, delivered: false, Quick);
        Assert.Equal(new EndpointDecision(1, Now.AddSeconds(1)), paused);
        Assert.Equal(Admission.Paused, policy.Admit(_endpoint));
        Assert.Equal(new[] { _endpoint }, policy.Closed());
        Assert.Equal(Now.AddSeconds(1), policy.NextProbeAt());
        Assert.Equal(1, policy.PausedCount());

        // An attempt that was in flight when it paused counts, without extending the pause.
        _clock.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Equal(Now.AddMilliseconds(500), policy.Observe(_endpoint, delivered: false, Quick).PausedUntil);

        // The pause ends: one probe goes, no more.
        _clock.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Null(policy.NextProbeAt());
        Assert.Equal(Admission.Go, policy.Admit(_endpoint));
        Assert.Equal(Admission.AtCap, policy.Admit(_endpoint));
        // It fails: 2 s, then 4 s, then the maximum (4 s) again.
        foreach (var pause in new[] { 2, 4, 4 })
        {
            Assert.Equal(Now.AddSeconds(pause), policy.Observe(_endpoint, delivered: false, Quick).PausedUntil);
            Assert.Equal(Admission.Paused, policy.Admit(_endpoint));
            _clock.Advance(TimeSpan.FromSeconds(pause));
            Assert.Equal(Admission.Go, policy.Admit(_endpoint));
        }
    }

    [Fact]
    public void A_success_ends_the_pause_and_the_failure_count()
    {
        var policy = Policy(threshold: 2);
        Admit(policy, _endpoint, 2);
        policy.Observe(_endpoint, delivered: false, Quick);
        Assert.NotNull(policy.Observe(_endpoint, delivered: false, Quick).PausedUntil);
        _clock.Advance(TimeSpan.FromSeconds(1));
        Admit(policy, _endpoint, 1);

        Assert.Equal(new EndpointDecision(8, null), policy.Observe(_endpoint, delivered: true, Quick));
        Assert.Equal(0, policy.PausedCount());
        Admit(policy, _endpoint, 8);
        // The count starts again: one failure does not pause it, and the next pause is 1 s again.
        Assert.Null(policy.Observe(_endpoint, delivered: false, Quick).PausedUntil);
        Assert.Equal(Now.AddSeconds(1), policy.Observe(_endpoint, delivered: false, Quick).PausedUntil);
    }

    [Fact]
    public void A_threshold_of_0_never_pauses()
    {
        var policy = Policy(threshold: 0);
        Admit(policy, _endpoint, 1);
        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(new EndpointDecision(8, null), policy.Observe(_endpoint, delivered: false, Quick));
            Assert.Equal(Admission.Go, policy.Admit(_endpoint));
        }
    }

    [Fact]
    public void A_failing_endpoint_without_attempts_for_an_hour_is_forgotten()
    {
        var policy = Policy(threshold: 2);
        Admit(policy, _endpoint, 1);
        policy.Observe(_endpoint, delivered: false, Quick);
        _clock.Advance(EndpointPolicy.ForgetAfter + TimeSpan.FromSeconds(1));
        Assert.Empty(policy.Closed());
        Admit(policy, _endpoint, 1);
        // Its one failure an hour ago no longer counts toward the threshold.
        Assert.Null(policy.Observe(_endpoint, delivered: false, Quick).PausedUntil);
    }
}
