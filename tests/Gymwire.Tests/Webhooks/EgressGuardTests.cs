using System.Net;
using Gymwire.Features.Webhooks;
using Microsoft.Extensions.Options;

namespace Gymwire.Tests.Webhooks;

/// <summary>The address classification behind the egress guard, exhaustively, without touching the network.</summary>
public sealed class EgressGuardTests
{
    private static EgressGuard Guard(params string[] allowed) => new(Options.Create(new WebhookOptions { AllowedNetworks = [.. allowed] }));

    [Theory]
    [InlineData("0.0.0.0", "unspecified")]
    [InlineData("0.1.2.3", "unspecified")]
    [InlineData("10.0.0.1", "private")]
    [InlineData("10.255.255.255", "private")]
    [InlineData("100.64.0.1", "carrier-grade NAT")]
    [InlineData("100.127.255.254", "carrier-grade NAT")]
    [InlineData("127.0.0.1", "loopback")]
    [InlineData("127.255.255.254", "loopback")]
    [InlineData("169.254.169.254", "link-local")]
    [InlineData("172.16.0.1", "private")]
    [InlineData("172.31.255.255", "private")]
    [InlineData("192.168.0.1", "private")]
    [InlineData("192.0.0.170", "reserved")]
    [InlineData("198.18.0.1", "benchmarking")]
    [InlineData("224.0.0.1", "multicast")]
    [InlineData("239.255.255.250", "multicast")]
    [InlineData("240.0.0.1", "reserved")]
    [InlineData("255.255.255.255", "reserved")]
    [InlineData("::", "unspecified")]
    [InlineData("::1", "loopback")]
    [InlineData("::127.0.0.1", "IPv4-compatible")]
    [InlineData("::ffff:127.0.0.1", "IPv4-mapped loopback")]
    [InlineData("::ffff:7f00:1", "IPv4-mapped loopback")]
    [InlineData("::ffff:10.0.0.1", "IPv4-mapped private")]
    [InlineData("::ffff:169.254.169.254", "IPv4-mapped link-local")]
    [InlineData("fe80::1", "link-local")]
    [InlineData("fe80::1%2", "link-local")]
    [InlineData("fc00::1", "unique local")]
    [InlineData("fd12:3456::1", "unique local")]
    [InlineData("fec0::1", "site-local")]
    [InlineData("ff02::1", "multicast")]
    [InlineData("2001:db8::1", "documentation")]
    [InlineData("::ffff:0:7f00:1", "IPv4-translated loopback")]
    [InlineData("::ffff:0:a9fe:a9fe", "IPv4-translated link-local")]
    [InlineData("64:ff9b::7f00:1", "NAT64 of loopback")]
    [InlineData("64:ff9b::a9fe:a9fe", "NAT64 of link-local")]
    [InlineData("2002:7f00:1::", "6to4 of loopback")]
    [InlineData("2002:c0a8:101::1", "6to4 of private")]
    [InlineData("fd00:ec2::254", "unique local")]
    public void Internal_and_reserved_addresses_are_forbidden(string address, string reason)
    {
        var classified = EgressGuard.Classify(IPAddress.Parse(address));
        Assert.NotNull(classified);
        Assert.StartsWith(reason, classified, StringComparison.Ordinal);
        Assert.NotNull(Guard().Check(IPAddress.Parse(address)));
    }

    [Theory]
    [InlineData("8.8.8.8")]
    [InlineData("1.1.1.1")]
    [InlineData("93.184.215.14")]
    [InlineData("172.32.0.1")]
    [InlineData("172.15.255.255")]
    [InlineData("100.128.0.1")]
    [InlineData("192.169.0.1")]
    [InlineData("169.255.0.1")]
    [InlineData("2606:4700:4700::1111")]
    [InlineData("2a00:1450:4001:81b::200e")]
    [InlineData("::ffff:8.8.8.8")]
    [InlineData("::ffff:0:808:808")]
    [InlineData("64:ff9b::808:808")]
    [InlineData("2002:808:808::1")]
    public void Public_addresses_are_allowed(string address)
    {
        Assert.Null(EgressGuard.Classify(IPAddress.Parse(address)));
        Assert.Null(Guard().Check(IPAddress.Parse(address)));
    }

    [Theory]
    [InlineData("https://127.0.0.1/")]
    [InlineData("https://2130706433/")]
    [InlineData("https://0x7f000001/")]
    [InlineData("https://0x7f.1/")]
    [InlineData("https://0177.0.0.1/")]
    [InlineData("https://127.1/")]
    [InlineData("https://017700000001/")]
    [InlineData("https://[::1]/")]
    [InlineData("https://[::ffff:127.0.0.1]/")]
    [InlineData("https://[0:0:0:0:0:ffff:7f00:1]/")]
    [InlineData("https://[::]/")]
    [InlineData("https://0/")]
    [InlineData("https://localhost/")]
    [InlineData("https://LOCALHOST./")]
    [InlineData("https://api.localhost/")]
    [InlineData("https://3232235777/")]
    [InlineData("https://169.254.169.254/")]
    [InlineData("https://[fd00:ec2::254]/")]
    public void Every_url_spelling_of_an_internal_address_is_caught(string url)
    {
        Assert.NotNull(Guard().CheckHost(new Uri(url)));
    }

    [Theory]
    [InlineData("https://hooks.example.com/")]
    [InlineData("https://8.8.8.8/")]
    [InlineData("https://[2606:4700:4700::1111]/")]
    [InlineData("https://localhost.example.com/")]
    public void Public_urls_pass(string url) => Assert.Null(Guard().CheckHost(new Uri(url)));

    [Fact]
    public void Allowed_networks_let_chosen_ranges_through_and_nothing_else()
    {
        var guard = Guard("127.0.0.0/8", "fd00::/8");
        Assert.Null(guard.Check(IPAddress.Parse("127.0.0.1")));
        Assert.Null(guard.Check(IPAddress.Parse("::ffff:127.0.0.1")));
        Assert.Null(guard.Check(IPAddress.Parse("fd00::5")));
        Assert.Null(guard.CheckHost(new Uri("http://localhost:8080/")));
        Assert.NotNull(guard.Check(IPAddress.Parse("::1")));
        Assert.NotNull(guard.Check(IPAddress.Parse("10.0.0.1")));
        Assert.NotNull(guard.Check(IPAddress.Parse("169.254.169.254")));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("localhost")]
    [InlineData("::1")]
    [InlineData("[::1]")]
    [InlineData("::ffff:127.0.0.1")]
    [InlineData("169.254.169.254")]
    [InlineData("10.0.0.1")]
    [InlineData("0.0.0.0")]
    [InlineData("172.16.0.1")]
    [InlineData("192.168.1.1")]
    [InlineData("100.64.0.1")]
    [InlineData("224.0.0.251")]
    [InlineData("255.255.255.255")]
    [InlineData("::")]
    [InlineData("fd00::1")]
    [InlineData("fe80::1")]
    [InlineData("ff02::1")]
    [InlineData("::ffff:169.254.169.254")]
    [InlineData("::ffff:10.0.0.1")]
    [InlineData("64:ff9b::a9fe:a9fe")]
    public async Task The_connect_callback_refuses_before_opening_a_socket(string host)
    {
        var e = await Assert.ThrowsAsync<EgressRefusedException>(async () => await Guard().ConnectAsync(new DnsEndPoint(host, 9), CancellationToken.None));
        Assert.StartsWith("Refused to connect", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_refusal_names_the_address_a_name_resolves_to_only_in_its_detail_for_the_log()
    {
        var e = await Assert.ThrowsAsync<EgressRefusedException>(async () => await Guard().ConnectAsync(new DnsEndPoint("localhost", 9), CancellationToken.None));
        Assert.Equal("Refused to connect to 'localhost': it resolves to an address Gymwire may not reach (an operator can allow a network with Webhooks:AllowedNetworks)", e.Message);
        Assert.Contains("loopback", e.Detail, StringComparison.Ordinal);
    }
}
