using System.Net;
using System.Net.Sockets;

namespace Gymwire.Tests.Infrastructure;

/// <summary>
/// Ports for servers a test must name before they bind (a child process, PostgreSQL, a second Kestrel port) and for
/// addresses nothing listens on. A server that can bind port 0 and report its port should do that instead.
/// A gymwire child process is not started again should its port be taken before it binds: by then it has done start-up
/// work (its row in cluster_nodes, its background services) that tests of the cluster would see.
/// </summary>
public static class TestPorts
{
    // Below Linux's ephemeral range (32768 and up): the kernel never gives these to an outgoing connection, which could
    // otherwise take a probed port in the seconds before the server binds it.
    private const int First = 20_000;
    private const int Count = 12_000;

    // Each call takes the next port from a random start: two fixtures of one run never probe the same port (a probe is
    // released before its server binds, so the second would find it free too), and parallel runs start far apart.
    private static int _next = Random.Shared.Next(Count);

    /// <summary>A port free on every address (as Kestrel binds it) that no other caller in this process is given.</summary>
    public static int Free()
    {
        for (var attempt = 0; ; attempt++)
        {
            var port = First + (int)((uint)Interlocked.Increment(ref _next) % Count);
            // A host without IPv6 has only IPv4's addresses to probe (Kestrel binds those alone there too).
            using var probe = Socket.OSSupportsIPv6 ? new TcpListener(IPAddress.IPv6Any, port) : new TcpListener(IPAddress.Any, port);
            if (Socket.OSSupportsIPv6)
            {
                probe.Server.DualMode = true;
            }
            try
            {
                probe.Start();
                return port;
            }
            catch (SocketException) when (attempt < 100)
            {
            }
        }
    }

    /// <summary>
    /// A loopback port nothing listens on, for a connection that must be refused. It is below the ephemeral range, so the
    /// connection's own local port can never equal it (a connect to an unused ephemeral port can connect to itself), and
    /// no server of this run is given it.
    /// </summary>
    public static int Closed() => Free();

    /// <summary>Whether a server's output says it could not bind its port because something else took it meanwhile.</summary>
    public static bool AddressInUse(string output) => output.Contains("address already in use", StringComparison.OrdinalIgnoreCase);
}
