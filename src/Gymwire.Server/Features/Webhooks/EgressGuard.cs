using System.Net;
using System.Net.Sockets;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// A delivery was refused because its host resolves only to addresses Gymwire may not reach. <see cref="Exception.Message"/>
/// is what the attempt records and its webhook's owner or API key sees: it names no address, so that webhooks cannot map
/// internal names to internal addresses. <see cref="Detail"/> names the address and its range, for the operator's log.
/// </summary>
public sealed class EgressRefusedException(string message, string detail) : Exception(message)
{
    public string Detail { get; } = detail;
}

/// <summary>
/// Keeps deliveries off internal networks (SSRF): loopback, private, link-local (cloud metadata), CGNAT,
/// unspecified, multicast, reserved, and their IPv6 forms (mapped, translated, NAT64, 6to4), unless <c>Webhooks:AllowedNetworks</c> lets a
/// network through. The check runs on the resolved address inside the connection callback, so a name that
/// resolves differently at delivery time than at creation time (DNS rebinding) still cannot pass.
/// </summary>
public sealed class EgressGuard(IOptions<WebhookOptions> options)
{
    private static readonly (IPNetwork Network, string Reason)[] ForbiddenV4 =
    [
        (IPNetwork.Parse("0.0.0.0/8"), "unspecified (0.0.0.0/8)"),
        (IPNetwork.Parse("10.0.0.0/8"), "private (10.0.0.0/8)"),
        (IPNetwork.Parse("100.64.0.0/10"), "carrier-grade NAT (100.64.0.0/10)"),
        (IPNetwork.Parse("127.0.0.0/8"), "loopback (127.0.0.0/8)"),
        (IPNetwork.Parse("169.254.0.0/16"), "link-local (169.254.0.0/16, includes cloud metadata)"),
        (IPNetwork.Parse("172.16.0.0/12"), "private (172.16.0.0/12)"),
        (IPNetwork.Parse("192.0.0.0/24"), "reserved (192.0.0.0/24)"),
        (IPNetwork.Parse("192.0.2.0/24"), "documentation (192.0.2.0/24)"),
        (IPNetwork.Parse("192.168.0.0/16"), "private (192.168.0.0/16)"),
        (IPNetwork.Parse("198.18.0.0/15"), "benchmarking (198.18.0.0/15)"),
        (IPNetwork.Parse("198.51.100.0/24"), "documentation (198.51.100.0/24)"),
        (IPNetwork.Parse("203.0.113.0/24"), "documentation (203.0.113.0/24)"),
        (IPNetwork.Parse("224.0.0.0/4"), "multicast (224.0.0.0/4)"),
        (IPNetwork.Parse("240.0.0.0/4"), "reserved (240.0.0.0/4, includes broadcast)"),
    ];

    private static readonly (IPNetwork Network, string Reason)[] ForbiddenV6 =
    [
        (IPNetwork.Parse("::/128"), "unspecified (::)"),
        (IPNetwork.Parse("::1/128"), "loopback (::1)"),
        (IPNetwork.Parse("::/96"), "IPv4-compatible (::/96, deprecated)"),
        (IPNetwork.Parse("64:ff9b:1::/48"), "local-use NAT64 (64:ff9b:1::/48)"),
        (IPNetwork.Parse("100::/64"), "discard-only (100::/64)"),
        (IPNetwork.Parse("2001::/32"), "Teredo (2001::/32)"),
        (IPNetwork.Parse("2001:db8::/32"), "documentation (2001:db8::/32)"),
        (IPNetwork.Parse("fc00::/7"), "unique local, the IPv6 private range (fc00::/7)"),
        (IPNetwork.Parse("fe80::/10"), "link-local (fe80::/10)"),
        (IPNetwork.Parse("fec0::/10"), "site-local (fec0::/10, deprecated)"),
        (IPNetwork.Parse("ff00::/8"), "multicast (ff00::/8)"),
    ];

    private static readonly IPNetwork Nat64 = IPNetwork.Parse("64:ff9b::/96");
    private static readonly IPNetwork Ipv4Translated = IPNetwork.Parse("::ffff:0:0:0/96");
    private static readonly IPNetwork SixToFour = IPNetwork.Parse("2002::/16");

    private readonly IReadOnlyList<IPNetwork> _allowed = options.Value.ParsedAllowedNetworks;

    /// <summary>Why <paramref name="address"/> may not be reached, or null when it may.</summary>
    public string? Check(IPAddress address)
    {
        var reason = Classify(address);
        if (reason is null)
        {
            return null;
        }
        var v4 = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
        return _allowed.Any(n => n.Contains(address) || n.Contains(v4)) ? null : reason;
    }

    /// <summary>The forbidden range <paramref name="address"/> falls in, ignoring configuration; null for a public address.</summary>
    public static string? Classify(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            return Classify(address.MapToIPv4()) is { } mapped ? $"IPv4-mapped {mapped}" : null;
        }
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            return ForbiddenV4.FirstOrDefault(f => f.Network.Contains(address)).Reason;
        }
        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return "not an IP address";
        }
        if (address.ScopeId != 0)
        {
            address = new IPAddress(address.GetAddressBytes());
        }
        // Translation prefixes carry an IPv4 address that the network would actually reach.
        if (Nat64.Contains(address))
        {
            return Classify(new IPAddress(address.GetAddressBytes()[12..16])) is { } embedded ? $"NAT64 of {embedded}" : null;
        }
        if (Ipv4Translated.Contains(address))
        {
            return Classify(new IPAddress(address.GetAddressBytes()[12..16])) is { } embedded ? $"IPv4-translated {embedded}" : null;
        }
        if (SixToFour.Contains(address))
        {
            return Classify(new IPAddress(address.GetAddressBytes()[2..6])) is { } embedded ? $"6to4 of {embedded}" : null;
        }
        return ForbiddenV6.FirstOrDefault(f => f.Network.Contains(address)).Reason;
    }

    /// <summary>
    /// Checks a URL's host when a subscription is saved: IP literals (in any form the URL parser accepts,
    /// such as <c>2130706433</c> or <c>0x7f.1</c>) and <c>localhost</c>. Names are checked again, resolved, at connect time.
    /// </summary>
    public string? CheckHost(Uri url)
    {
        if (url.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6 && IPAddress.TryParse(url.IdnHost.Trim('[', ']'), out var ip))
        {
            return Check(ip) is { } reason ? $"'{url.Host}' is {reason}" : null;
        }
        var host = url.IdnHost.TrimEnd('.');
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase))
        {
            return Check(IPAddress.Loopback) is { } reason ? $"'{url.Host}' is {reason}" : null;
        }
        return null;
    }

    /// <summary>
    /// <see cref="SocketsHttpHandler.ConnectCallback"/>: resolves the host, keeps only reachable addresses and
    /// connects to the first that answers. Proxies are off for webhook clients, so this sees the real target.
    /// </summary>
    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken) =>
        await ConnectAsync(context.DnsEndPoint, cancellationToken);

    public async ValueTask<Stream> ConnectAsync(DnsEndPoint endpoint, CancellationToken cancellationToken)
    {
        var addresses = IPAddress.TryParse(endpoint.Host.Trim('[', ']'), out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(endpoint.Host, cancellationToken);
        var allowed = new List<IPAddress>();
        string? firstRefusal = null;
        foreach (var address in addresses)
        {
            if (Check(address) is { } reason)
            {
                firstRefusal ??= $"{address} is {reason}";
            }
            else
            {
                allowed.Add(address);
            }
        }
        if (allowed.Count == 0)
        {
            if (firstRefusal is null)
            {
                var none = $"'{endpoint.Host}' did not resolve to any address";
                throw new EgressRefusedException(none, none);
            }
            throw new EgressRefusedException(
                $"Refused to connect to '{endpoint.Host}': it resolves to an address Gymwire may not reach (an operator can allow a network with Webhooks:AllowedNetworks)",
                $"Refused to connect to '{endpoint.Host}': {firstRefusal}");
        }
        Exception? last = null;
        foreach (var address in allowed)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, endpoint.Port), cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                last = e;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw last!;
    }
}
