using System.Globalization;

namespace Gymwire.Bench;

/// <summary>
/// The CPU time of the machine's PostgreSQL server processes (<c>/proc/*/stat</c>, comm <c>postgres</c>): on a shared
/// 2-core machine, the database's work per delivery moves less between runs than throughput. A backend that exits
/// during a stretch takes its time with it; the server's pools keep theirs open.
/// </summary>
public static class PostgresCpu
{
    // USER_HZ, the unit of /proc/*/stat's times, is 100 on Linux.
    private const double TicksPerSecond = 100;

    public static TimeSpan Total()
    {
        long ticks = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var close = stat.LastIndexOf(')');
                if (close < 0 || !stat.AsSpan(0, close).EndsWith("(postgres", StringComparison.Ordinal))
                {
                    continue;
                }
                // After the command: state is field 3, utime and stime are fields 14 and 15.
                var fields = stat[(close + 2)..].Split(' ');
                ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                // The process ended meanwhile.
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        return TimeSpan.FromSeconds(ticks / TicksPerSecond);
    }
}
