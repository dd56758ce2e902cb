using System.Diagnostics;
using System.Text;
using Gymwire.Features.Webhooks;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The receivers in docs/webhooks.md, run for real: the reference Express check (Node's crypto, verbatim) and
/// Standard Webhooks verification in Node and Python accept Gymwire's headers. scripts/test installs Node.js
/// where it is missing (Python 3 is part of the base system); a missing interpreter fails the test.
/// </summary>
public sealed class CrossLanguageVerificationTests
{
    private const string NodeVerifier = """
        const crypto = require("crypto");
        const [secret, signature, id, timestamp, signatures] = process.argv.slice(-5); // with -e there is no script path in argv
        const chunks = [];
        process.stdin.on("data", c => chunks.push(c));
        process.stdin.on("end", () => {
          const rawBody = Buffer.concat(chunks);
          // The reference Express receiver, unchanged.
          const expected = crypto.createHmac("sha256", secret).update(rawBody).digest("hex");
          const combatScore = crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
          // Standard Webhooks.
          const key = Buffer.from(secret.split("_")[1], "base64");
          const mac = crypto.createHmac("sha256", key).update(`${id}.${timestamp}.`).update(rawBody).digest("base64");
          const standard = signatures.split(" ").some(s => s.split(",")[1] === mac);
          process.stdout.write(combatScore && standard ? "ok" : "bad");
        });
        """;

    private const string PythonVerifier = """
        import base64, hashlib, hmac, sys
        secret, signature, msg_id, timestamp, signatures = sys.argv[1:6]
        raw_body = sys.stdin.buffer.read()
        expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
        combat_score = hmac.compare_digest(signature, expected)
        key = base64.b64decode(secret.split("_", 1)[1])
        mac = base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.".encode() + raw_body, hashlib.sha256).digest()).decode()
        standard = any(hmac.compare_digest(s.split(",", 1)[1], mac) for s in signatures.split(" "))
        sys.stdout.write("ok" if combat_score and standard else "bad")
        """;

    [Theory]
    [InlineData("node", "-e")]
    [InlineData("python3", "-c")]
    public async Task Receivers_in_other_languages_accept_the_signatures(string interpreter, string flag)
    {
        var script = interpreter == "node" ? NodeVerifier : PythonVerifier;
        var (current, previous) = (WebhookSigner.NewSecret(), WebhookSigner.NewSecret());
        var body = Encoding.UTF8.GetBytes("""{"id":"0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e60","event":"member.joined","gym_id":"g","data":{"name":"José"},"timestamp":"2026-04-16T12:00:00.000Z"}""");
        var headers = WebhookSigner.Headers([current, previous], "0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e99", DateTimeOffset.UtcNow, body).ToDictionary(h => h.Key, h => h.Value);

        foreach (var secret in new[] { current, previous })
        {
            // The CombatScore header is signed with the current secret only.
            var expected = secret == current ? "ok" : "bad";
            var output = await RunAsync(interpreter, flag, script, body,
                secret, headers["X-CombatScore-Signature"], headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]);
            Assert.Equal(expected, output);
        }
    }

    private static async Task<string> RunAsync(string file, string flag, string script, byte[] stdin, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(flag);
        start.ArgumentList.Add(script);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"'{file}' is not installed; scripts/test installs what the tests need.", e);
        }
        using (process)
        {
            await process.StandardInput.BaseStream.WriteAsync(stdin);
            process.StandardInput.Close();
            var output = await process.StandardOutput.ReadToEndAsync();
            var error = await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            Assert.True(process.ExitCode == 0, error);
            return output;
        }
    }
}
