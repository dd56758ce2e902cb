using Gymwire.Features.Webhooks;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// Each decision of <see cref="EndpointPolicy"/>, on a fake clock: no HTTP, no database. The stored health
/// (<see cref="EndpointHealth"/>) is a local here, as the attempt recorder would store it and every node's claim read it.
/// </summary>
public sealed class EndpointPolicyTests
{
    private static readonly TimeSpan Quick = TimeSpan.FromMilliseconds(30);
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 4, 16, 12, 0, 0, TimeSpan.Zero));
    private readonly Guid _endpoint = Guid.NewGuid();
    private static readonly EndpointHealth Healthy = EndpointHealth.Healthy;

    private EndpointPolicy Policy(int perEndpoint = 8, int threshold = 5) => new(Options.Create(new WebhookOptions
    {
        MaxConcurrentPerEndpoint = perEndpoint,
        FailingEndpointThreshold = threshold,
        FailingEndpointMaxPause = TimeSpan.FromSeconds(4),
        SlowAttempt = TimeSpan.FromSeconds(2),
        Timeout = TimeSpan.FromSeconds(10),
    }), _clock, NullLogger<EndpointPolicy>.Instance);

    private DateTime Now => _clock.GetUtcNow().UtcDateTime;

    private void Admit(EndpointPolicy policy, int times, EndpointHealth health = default)
    {
        for (var i = 0; i < times; i++)
        {
            Assert.Equal(Admission.Go, policy.Admit(_endpoint, health));
        }
    }

    /// <summary>An admitted attempt ends as the worker and the recorder see it: the stored health moves on, the slot is freed.</summary>
    private int Outcome(EndpointPolicy policy, ref EndpointHealth health, bool delivered, TimeSpan? duration = null)
    {
        health = policy.Next(_endpoint, health, delivered);
        return policy.Observe(_endpoint, health, duration ?? Quick);
    }

    [Fact]
    public void An_endpoint_gets_at_most_its_cap_in_flight_and_a_slot_back_for_each_that_ends()
    {
        var policy = Policy(perEndpoint: 3);
        var health = Healthy;
        Admit(policy, 3);
        Assert.Equal(Admission.AtCap, policy.Admit(_endpoint, health));
        Assert.Equal(new[] { _endpoint }, policy.AtCapacity());
        // Other endpoints are not limited by it.
        Assert.Equal(Admission.Go, policy.Admit(Guid.NewGuid(), Healthy));

        Assert.Equal(3, Outcome(policy, ref health, delivered: true));
        // A healthy endpoint's success leaves nothing to store.
        Assert.Equal(Healthy, health);
        Assert.DoesNotContain(_endpoint, policy.AtCapacity());
        Admit(policy, 1);
        policy.Release(_endpoint);
        Admit(policy, 1);
    }

    [Fact]
    public void A_slow_attempt_limits_its_endpoint_to_one_in_flight_until_one_is_quick()
    {
        var policy = Policy();
        var health = Healthy;
        Admit(policy, 4);
        Assert.Equal(1, Outcome(policy, ref health, delivered: true, TimeSpan.FromSeconds(2)));
        // Three still in flight: none more until they are down to none.
        Assert.Equal(Admission.AtCap, policy.Admit(_endpoint, health));
        Outcome(policy, ref health, delivered: false, TimeSpan.FromSeconds(10));
        Outcome(policy, ref health, delivered: false, TimeSpan.FromSeconds(10));
        Assert.Equal(Admission.AtCap, policy.Admit(_endpoint, health));
        Assert.Equal(1, Outcome(policy, ref health, delivered: false, TimeSpan.FromSeconds(10)));
        Admit(policy, 1, health);
        Assert.Equal(Admission.AtCap, policy.Admit(_endpoint, health));

        // A quick answer, failed or not, lifts the limit.
        Assert.Equal(8, Outcome(policy, ref health, delivered: false));
        Admit(policy, 8, health);
    }

    [Fact]
    public void A_timeout_shorter_than_the_slow_threshold_still_counts_as_slow()
    {
        var policy = new EndpointPolicy(Options.Create(new WebhookOptions { Timeout = TimeSpan.FromSeconds(1), SlowAttempt = TimeSpan.FromSeconds(2) }),
            _clock, NullLogger<EndpointPolicy>.Instance);
        var health = Healthy;
        Admit(policy, 1);
        Assert.Equal(1, Outcome(policy, ref health, delivered: false, TimeSpan.FromMilliseconds(990)));
    }

    [Fact]
    public void Failing_threshold_times_in_a_row_pauses_the_endpoint_and_each_failed_probe_doubles_the_pause_up_to_the_maximum()
    {
        var policy = Policy(threshold: 3);
        var health = Healthy;
        Admit(policy, 4);
        Assert.Equal(8, Outcome(policy, ref health, delivered: false));
        Assert.Equal(new EndpointHealth(1, null, null, null), health);
        Assert.Equal(8, Outcome(policy, ref health, delivered: false));
        Assert.Equal(1, Outcome(policy, ref health, delivered: false));
        Assert.Equal(new EndpointHealth(3, Now.AddSeconds(1), TimeSpan.FromSeconds(1), null), health);
        Assert.Equal(Admission.Paused, policy.Admit(_endpoint, health));
        Assert.Equal(Now.AddSeconds(1), policy.NextProbeAt());

        // An attempt that was in flight when it paused counts (up to the threshold), without extending the pause.
        _clock.Advance(TimeSpan.FromMilliseconds(500));
        Outcome(policy, ref health, delivered: false);
        Assert.Equal(new EndpointHealth(3, Now.AddMilliseconds(500), TimeSpan.FromSeconds(1), null), health);

        // The pause ends: one probe may go (once this node wins it in the queue), no more.
        _clock.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Null(policy.NextProbeAt());
        Assert.Equal(Admission.Probe, policy.Admit(_endpoint, health));
        Assert.Equal(Admission.AtCap, policy.Admit(_endpoint, health));
        // It fails: 2 s, then 4 s, then the maximum (4 s) again.
        foreach (var pause in new[] { 2, 4, 4 })
        {
            Outcome(policy, ref health, delivered: false);
            Assert.Equal(new EndpointHealth(3, Now.AddSeconds(pause), TimeSpan.FromSeconds(pause), null), health);
            Assert.Equal(Admission.Paused, policy.Admit(_endpoint, health));
            _clock.Advance(TimeSpan.FromSeconds(pause));
            Assert.Equal(Admission.Probe, policy.Admit(_endpoint, health));
        }
    }

    [Fact]
    public void A_success_ends_the_pause_and_the_failure_count()
    {
        var policy = Policy(threshold: 2);
        var health = Healthy;
        Admit(policy, 2);
        Outcome(policy, ref health, delivered: false);
        Outcome(policy, ref health, delivered: false);
        Assert.NotNull(health.PausedUntil);
        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(Admission.Probe, policy.Admit(_endpoint, health));

        Assert.Equal(8, Outcome(policy, ref health, delivered: true));
        Assert.Equal(Healthy, health);
        Assert.Null(policy.NextProbeAt());
        Admit(policy, 8, health);
        // The count starts again: one failure does not pause it, and the next pause is 1 s again.
        Outcome(policy, ref health, delivered: false);
        Assert.Null(health.PausedUntil);
        Outcome(policy, ref health, delivered: false);
        Assert.Equal(Now.AddSeconds(1), health.PausedUntil);
    }

    [Fact]
    public void A_threshold_of_0_never_pauses_and_stores_nothing()
    {
        var policy = Policy(threshold: 0);
        var health = Healthy;
        Admit(policy, 1);
        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(8, Outcome(policy, ref health, delivered: false));
            Assert.Equal(Healthy, health);
            Admit(policy, 1, health);
        }
    }

    [Fact]
    public void A_slow_endpoint_without_attempts_for_an_hour_is_forgotten_by_the_node()
    {
        var policy = Policy();
        var health = Healthy;
        Admit(policy, 1);
        Outcome(policy, ref health, delivered: true, TimeSpan.FromSeconds(3));
        Admit(policy, 1);
        Assert.Equal(Admission.AtCap, policy.Admit(_endpoint, health));
        policy.Release(_endpoint);
        _clock.Advance(EndpointPolicy.ForgetAfter + TimeSpan.FromSeconds(1));
        Assert.Empty(policy.AtCapacity());
        // Its slow attempt an hour ago no longer limits it.
        Admit(policy, 8);
    }

    [Fact]
    public void Nodes_sharing_one_stored_health_pause_together_probe_once_and_resume_together()
    {
        // Three nodes, each with its own policy, one subscription row.
        var nodes = new[] { Policy(threshold: 3), Policy(threshold: 3), Policy(threshold: 3) };
        var stored = Healthy;
        // Failures recorded by different nodes count toward one threshold.
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(Admission.Go, nodes[i].Admit(_endpoint, stored));
            stored = nodes[i].Next(_endpoint, stored, delivered: false);
            nodes[i].Observe(_endpoint, stored, Quick);
        }
        Assert.Equal(Now.AddSeconds(1), stored.PausedUntil);
        Assert.All(nodes, n => Assert.Equal(Admission.Paused, n.Admit(_endpoint, stored)));

        // The pause ends: every node would probe, and the queue lets one (which stores its probe claim); the others
        // see it and leave the endpoint out until it expires.
        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.All(nodes, n => Assert.Equal(Admission.Probe, n.Admit(_endpoint, stored)));
        nodes[1].Release(_endpoint);
        nodes[2].Release(_endpoint);
        stored = stored with { ProbeClaimedUntil = Now.AddMinutes(1) };
        Assert.Equal(Admission.Paused, nodes[1].Admit(_endpoint, stored));
        Assert.Equal(Admission.Paused, nodes[2].Admit(_endpoint, stored));

        // The probe fails: one new pause (2 s) for all, and the probe claim ends with it.
        stored = nodes[0].Next(_endpoint, stored, delivered: false);
        nodes[0].Observe(_endpoint, stored, Quick);
        Assert.Equal(new EndpointHealth(3, Now.AddSeconds(2), TimeSpan.FromSeconds(2), null), stored);
        Assert.All(nodes, n => Assert.Equal(Admission.Paused, n.Admit(_endpoint, stored)));

        // A probe claim whose node died lapses: another node may probe.
        _clock.Advance(TimeSpan.FromSeconds(2));
        stored = stored with { ProbeClaimedUntil = Now.AddSeconds(30) };
        Assert.Equal(Admission.Paused, nodes[2].Admit(_endpoint, stored));
        _clock.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(Admission.Probe, nodes[2].Admit(_endpoint, stored));

        // Node 2's probe succeeds: every node goes at full rate at once, node 0 too (it saw the pause itself).
        stored = nodes[2].Next(_endpoint, stored, delivered: true);
        Assert.Equal(8, nodes[2].Observe(_endpoint, stored, Quick));
        Assert.Equal(Healthy, stored);
        Assert.All(nodes, n =>
        {
            for (var i = 0; i < 8; i++)
            {
                Assert.Equal(Admission.Go, n.Admit(_endpoint, stored));
            }
        });
    }
}
