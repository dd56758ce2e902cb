using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Gymwire.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Gymwire.Tests.Operations;

/// <summary>
/// HTTPS served by Kestrel itself, from its standard configuration (<c>Kestrel:Endpoints:Https:Url</c>,
/// <c>:Certificate:Path</c>, <c>:KeyPath</c> or <c>:Password</c>), with a certificate the test makes, as PEM files and as a
/// PFX; plain HTTP beside it redirects, and HSTS is sent. The reference's Ruby example runs against it as written.
/// The store plays no part in TLS: these run on SQLite.
/// </summary>
public abstract class HttpsTests(DirectHttpsGymwire fx)
{
    public sealed class Pem(PemHttpsGymwire f) : HttpsTests(f), IClassFixture<PemHttpsGymwire>;
    public sealed class Pfx(PfxHttpsGymwire f) : HttpsTests(f), IClassFixture<PfxHttpsGymwire>;

    [Fact]
    public async Task The_reference_Ruby_example_runs_over_https_trusting_the_certificate()
    {
        Assert.Equal("https", fx.BaseAddress.Scheme);
        var gym = await fx.CreateGymAsync();
        await (await gym.Owner().PostJsonAsync("/api/gym/members", new { name = "Ana", user_id = "user_ruby" })).AssertStatusAsync(HttpStatusCode.Created);
        var key = (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "ruby", scopes = new[] { "read" } })).JsonAsync()).GetProperty("key").GetString()!;

        // The example as the reference prints it (Zapier/SdkExamples/example.rb), only API_KEY and BASE changed.
        var source = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "Zapier", "SdkExamples", "example.rb"));
        var baseUrl = fx.BaseAddress.ToString().TrimEnd('/');
        var edited = source.Replace("cs_your_key_here", key, StringComparison.Ordinal).Replace("https://combatscore.app", baseUrl, StringComparison.Ordinal);
        Assert.Equal(source.Length - "cs_your_key_here".Length - "https://combatscore.app".Length + key.Length + baseUrl.Length, edited.Length);
        Assert.Contains("use_ssl: true", edited, StringComparison.Ordinal);
        var script = Path.Combine(fx.Certificates.Directory, Guid.NewGuid().ToString("N") + ".rb");
        await File.WriteAllTextAsync(script, edited);

        var start = new ProcessStartInfo("ruby", script) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.Environment["SSL_CERT_FILE"] = fx.Certificates.CaPath;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
        Assert.True(process.ExitCode == 0, $"ruby failed: {await stderr}");
        var members = JsonDocument.Parse((await stdout).Trim().Split('\n')[^1]).RootElement.GetProperty("members");
        Assert.Equal("user_ruby", Assert.Single(members.EnumerateArray()).GetProperty("user_id").GetString());
    }

    [Fact]
    public async Task Ruby_refuses_the_server_without_the_certificate_trusted()
    {
        // The check above is real: with the system's trust store only, Net::HTTP rejects the test certificate.
        var script = Path.Combine(fx.Certificates.Directory, Guid.NewGuid().ToString("N") + ".rb");
        await File.WriteAllTextAsync(script, $$"""
            require "net/http"
            uri = URI("{{fx.BaseAddress.ToString().TrimEnd('/')}}/healthz")
            Net::HTTP.start(uri.hostname, uri.port, use_ssl: true) { |http| http.request(Net::HTTP::Get.new(uri)) }
            """);
        var start = new ProcessStartInfo("ruby", script) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.Environment.Remove("SSL_CERT_FILE");
        using var process = Process.Start(start)!;
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
        Assert.NotEqual(0, process.ExitCode);
        Assert.Contains("certificate verify failed", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plain_http_redirects_to_https_except_the_health_endpoint_and_https_answers_send_hsts()
    {
        using var plain = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = fx.HttpAddress };
        var redirected = await plain.GetAsync("/api/zapier/triggers?type=new_member");
        Assert.Equal(HttpStatusCode.TemporaryRedirect, redirected.StatusCode);
        Assert.Equal(new Uri(fx.BaseAddress, "/api/zapier/triggers?type=new_member"), redirected.Headers.Location);
        Assert.False(redirected.Headers.Contains("Strict-Transport-Security"));

        // The health endpoint answers over plain HTTP, as load balancers and the container's health check probe it.
        var health = await plain.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("""{"status":"healthy"}""", await health.Content.ReadAsStringAsync());
        Assert.False(health.Headers.Contains("Strict-Transport-Security"));

        // HSTS is for names, not loopback addresses (a browser ignores it there, and ASP.NET Core leaves those out).
        using var tls = fx.Client();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/healthz");
        request.Headers.Host = "gym.example.com";
        var answer = await tls.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal("max-age=31536000", string.Join(",", answer.Headers.GetValues("Strict-Transport-Security")));
        Assert.False((await tls.GetAsync("/healthz")).Headers.Contains("Strict-Transport-Security"));
    }
}

/// <summary>A throwaway CA and a certificate it signed for 127.0.0.1 and localhost, as PEM files and a PFX.</summary>
public sealed class TestCertificates
{
    public const string CaName = "CN=Gymwire Operations Test CA";
    public const string PfxPassword = "pfx-password-1";

    public TestCertificates()
    {
        Directory = Path.Combine(Path.GetTempPath(), "gymwire-https-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(Directory);
        var now = DateTimeOffset.UtcNow;
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest(CaName, caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using var ca = caRequest.CreateSelfSigned(now.AddDays(-1), now.AddDays(30));

        using var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var leafRequest = new CertificateRequest("CN=localhost", leafKey, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        san.AddDnsName("gym.example.com");
        leafRequest.CertificateExtensions.Add(san.Build());
        leafRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        leafRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        leafRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        leafRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using var leaf = leafRequest.Create(ca, now.AddDays(-1), now.AddDays(29), RandomNumberGenerator.GetBytes(12));
        using var leafWithKey = leaf.CopyWithPrivateKey(leafKey);

        CaPath = Path.Combine(Directory, "ca.pem");
        File.WriteAllText(CaPath, ca.ExportCertificatePem());
        CertificatePath = Path.Combine(Directory, "server.pem");
        File.WriteAllText(CertificatePath, leaf.ExportCertificatePem());
        KeyPath = Path.Combine(Directory, "server.key");
        File.WriteAllText(KeyPath, leafKey.ExportPkcs8PrivateKeyPem());
        PfxPath = Path.Combine(Directory, "server.pfx");
        File.WriteAllBytes(PfxPath, leafWithKey.Export(X509ContentType.Pkcs12, PfxPassword));
    }

    public string Directory { get; }
    public string CaPath { get; }
    public string CertificatePath { get; }
    public string KeyPath { get; }
    public string PfxPath { get; }
}

/// <summary>
/// Gymwire listening on HTTPS (the endpoint named Https) and on plain HTTP (named Redirect), with the redirect and HSTS on.
/// </summary>
public abstract class DirectHttpsGymwire() : GymwireFixture(Store.Sqlite)
{
    public TestCertificates Certificates { get; } = new();

    /// <summary>The plain-HTTP endpoint, which only redirects.</summary>
    public Uri HttpAddress => new(Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single(a => a.StartsWith("http://", StringComparison.Ordinal)));

    protected abstract IEnumerable<KeyValuePair<string, string>> Certificate();

    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        // Kestrel binds its configured endpoints in the order of their names: Https first, so it is the fixture's BaseAddress.
        new("Kestrel:Endpoints:Https:Url", "https://127.0.0.1:0"),
        .. Certificate(),
        new("Kestrel:Endpoints:Redirect:Url", "http://127.0.0.1:0"),
        new("Https:Redirect", "true"),
        new("Https:Hsts", "true"),
    ];

    protected override HttpMessageHandler CreateHandler() => new HttpClientHandler
    {
        ServerCertificateCustomValidationCallback = (_, certificate, _, _) => certificate?.Issuer == TestCertificates.CaName,
    };
}

public sealed class PemHttpsGymwire : DirectHttpsGymwire
{
    protected override IEnumerable<KeyValuePair<string, string>> Certificate() =>
    [
        new("Kestrel:Endpoints:Https:Certificate:Path", Certificates.CertificatePath),
        new("Kestrel:Endpoints:Https:Certificate:KeyPath", Certificates.KeyPath),
    ];
}

public sealed class PfxHttpsGymwire : DirectHttpsGymwire
{
    protected override IEnumerable<KeyValuePair<string, string>> Certificate() =>
    [
        new("Kestrel:Endpoints:Https:Certificate:Path", Certificates.PfxPath),
        new("Kestrel:Endpoints:Https:Certificate:Password", TestCertificates.PfxPassword),
    ];
}
