using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Zapier;

/// <summary>
/// The reference document's SDK examples (JavaScript fetch, Python requests, Ruby Net::HTTP) run unchanged
/// but for BASE and the key, in their real runtimes, against Gymwire over HTTPS (the Ruby example insists
/// on TLS), trusting a test CA through each runtime's standard variable.
/// </summary>
public sealed class SdkExampleTests(HttpsGymwire fx) : IClassFixture<HttpsGymwire>
{
    [Theory]
    [InlineData("example.mjs", "node", "NODE_EXTRA_CA_CERTS", true)]
    [InlineData("example.py", "/usr/bin/python3", "REQUESTS_CA_BUNDLE", true)]
    [InlineData("example.rb", "ruby", "SSL_CERT_FILE", false)]
    public async Task The_documented_example_works_against_gymwire(string script, string runtime, string trustVariable, bool createsLead)
    {
        var gym = await fx.CreateGymAsync();
        await (await gym.Owner().PostJsonAsync("/api/gym/members", new { name = "Ana", user_id = "user_sdk" })).AssertStatusAsync(HttpStatusCode.Created);
        var key = (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "sdk", scopes = new[] { "read", "write" } })).JsonAsync()).GetProperty("key").GetString()!;

        var source = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "Zapier", "SdkExamples", script));
        var baseUrl = fx.BaseAddress.ToString().TrimEnd('/');
        var edited = source.Replace("cs_your_key_here", key, StringComparison.Ordinal).Replace("https://combatscore.app", baseUrl, StringComparison.Ordinal);
        Assert.Equal(source.Length - "cs_your_key_here".Length - "https://combatscore.app".Length + key.Length + baseUrl.Length, edited.Length);
        var path = Path.Combine(fx.Directory, Guid.NewGuid().ToString("N") + Path.GetExtension(script));
        await File.WriteAllTextAsync(path, edited);

        var start = new ProcessStartInfo(runtime, path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.Environment[trustVariable] = fx.CaPath;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
        Assert.True(process.ExitCode == 0, $"{runtime} {script} failed: {await stderr}");

        var output = JsonDocument.Parse((await stdout).Trim().Split('\n')[^1]).RootElement;
        var member = Assert.Single(output.GetProperty("members").EnumerateArray());
        Assert.Equal("user_sdk", member.GetProperty("user_id").GetString());
        if (createsLead)
        {
            Assert.Equal("Jane", output.GetProperty("lead").GetProperty("first_name").GetString());
            Assert.Equal("zapier", output.GetProperty("lead").GetProperty("source").GetString());
        }
    }
}

/// <summary>Gymwire on HTTPS with a certificate from a throwaway test CA.</summary>
public sealed class HttpsGymwire : GymwireFixture
{
    private const string CaName = "CN=Gymwire Test CA";

    public HttpsGymwire() : base(Store.Sqlite)
    {
        Directory = Path.Combine(Path.GetTempPath(), "gymwire-tls-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(Directory);
        var now = DateTimeOffset.UtcNow;
        using var caKey = RSA.Create(2048);
        var caRequest = new CertificateRequest(CaName, caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using var ca = caRequest.CreateSelfSigned(now.AddDays(-1), now.AddDays(30));

        using var leafKey = RSA.Create(2048);
        var leafRequest = new CertificateRequest("CN=localhost", leafKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        leafRequest.CertificateExtensions.Add(san.Build());
        leafRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        leafRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        leafRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        leafRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using var leaf = leafRequest.Create(ca, now.AddDays(-1), now.AddDays(29), RandomNumberGenerator.GetBytes(12));

        CaPath = Path.Combine(Directory, "ca.pem");
        File.WriteAllText(CaPath, ca.ExportCertificatePem());
        File.WriteAllText(Path.Combine(Directory, "server.pem"), leaf.ExportCertificatePem());
        File.WriteAllText(Path.Combine(Directory, "server.key"), leafKey.ExportPkcs8PrivateKeyPem());
    }

    public string Directory { get; }

    public string CaPath { get; }

    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        new("urls", "https://127.0.0.1:0"),
        new("Kestrel:Certificates:Default:Path", Path.Combine(Directory, "server.pem")),
        new("Kestrel:Certificates:Default:KeyPath", Path.Combine(Directory, "server.key")),
    ];

    protected override HttpMessageHandler CreateHandler() => new HttpClientHandler
    {
        ServerCertificateCustomValidationCallback = (_, certificate, _, _) => certificate?.Issuer == CaName,
    };
}
