using System.Diagnostics;

namespace Gymwire.Tests.Infrastructure;

/// <summary>
/// The sweep of earlier runs' PostgreSQL clusters must leave a live run's cluster alone: another test process (a soak
/// beside a test run) reads the owner's start time a few microseconds away from what the owner wrote.
/// </summary>
public sealed class PostgresClusterSweepTests
{
    [Fact]
    public void A_running_owner_is_alive_though_another_process_reads_its_start_time_microseconds_apart()
    {
        using var child = Process.Start(new ProcessStartInfo("sleep", "60") { UseShellExecute = false })!;
        try
        {
            var written = PostgresCluster.Owner(child).Split(' ');
            var pid = written[0];
            var ticks = long.Parse(written[1], System.Globalization.CultureInfo.InvariantCulture);

            // What the owner wrote, as another process computes it: its boot time is "now minus uptime", taken later.
            foreach (var jitter in new[] { -TimeSpan.FromMilliseconds(3), TimeSpan.FromMicroseconds(1.5), TimeSpan.FromMilliseconds(40) })
            {
                Assert.True(PostgresCluster.IsAlive($"{pid} {ticks + jitter.Ticks}"), $"alive, read {jitter.TotalMicroseconds} µs apart");
            }
            // The same pid with another start time is another process: the pid was reused.
            Assert.False(PostgresCluster.IsAlive($"{pid} {ticks - TimeSpan.FromMinutes(5).Ticks}"));
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
        }
        Assert.False(PostgresCluster.IsAlive($"{child.Id} {child.StartTime.ToUniversalTime().Ticks}"), "an exited owner is gone");
        Assert.False(PostgresCluster.IsAlive("not an owner"));
    }
}
