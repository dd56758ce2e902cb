using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MimeKit;

namespace Gymwire.Tests.Email;

/// <summary>A minimal SMTP server on loopback (no TLS, no auth) that records every message it accepts.</summary>
public sealed class SmtpStandIn : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();

    public ConcurrentQueue<MimeMessage> Messages { get; } = new();
    public int Port { get; }

    /// <summary>Addresses every RCPT TO for which is refused with 550 (no such mailbox).</summary>
    public ConcurrentDictionary<string, bool> RefusedRecipients { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>How many coming MAIL FROM commands are refused with 554.</summary>
    public int RejectNext;

    /// <summary>How many coming MAIL FROM commands are answered 530 (authentication required), as a server that wants a login does.</summary>
    public int RequireLoginNext;

    private readonly Lock _waitersLock = new();
    private readonly List<(Func<MimeMessage, bool> Match, TaskCompletionSource<MimeMessage> Done)> _waiters = [];

    /// <summary>Completes with the first message accepted from now on that <paramref name="match"/> accepts.</summary>
    public Task<MimeMessage> NextAsync(Func<MimeMessage, bool> match)
    {
        var done = new TaskCompletionSource<MimeMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waitersLock)
        {
            _waiters.Add((match, done));
        }
        return done.Task;
    }

    private void Accepted(MimeMessage message)
    {
        Messages.Enqueue(message);
        lock (_waitersLock)
        {
            foreach (var waiter in _waiters.Where(w => w.Match(message)).ToList())
            {
                _waiters.Remove(waiter);
                waiter.Done.TrySetResult(message);
            }
        }
    }

    private TaskCompletionSource _refused = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the stand-in next refuses a MAIL FROM (554 or 530).</summary>
    public Task NextRefusalAsync() => Volatile.Read(ref _refused).Task;

    private void RefusedOne() => Interlocked.Exchange(ref _refused, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    private sealed record Hold(string Verb, TaskCompletionSource Arrived, TaskCompletionSource Release);

    private Hold? _hold;

    /// <summary>
    /// Makes the next MAIL FROM wait for an answer until <c>Release</c> completes; <c>Arrived</c> completes when it
    /// comes, so a test can act while a message is in flight.
    /// </summary>
    public (Task Arrived, TaskCompletionSource Release) HoldNextMail() => HoldNext("MAIL");

    /// <summary>As <see cref="HoldNextMail"/>, for the QUIT that follows an accepted message.</summary>
    public (Task Arrived, TaskCompletionSource Release) HoldNextQuit() => HoldNext("QUIT");

    private (Task Arrived, TaskCompletionSource Release) HoldNext(string verb)
    {
        var hold = new Hold(verb, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        Volatile.Write(ref _hold, hold);
        return (hold.Arrived.Task, hold.Release);
    }

    private TaskCompletionSource? _mailGate;

    /// <summary>
    /// Makes every MAIL FROM from now on wait for an answer until the returned source completes (a hanging server),
    /// counting each one that arrives in <see cref="HeldMail"/>.
    /// </summary>
    public TaskCompletionSource HoldEveryMail()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _mailGate, gate);
        return gate;
    }

    private int _heldMail;

    public int HeldMail => Volatile.Read(ref _heldMail);

    /// <summary>A slow server: waits this long (real time, as a socket does) before the greeting and each answer.</summary>
    public TimeSpan AnswerDelay { get; init; }

    /// <summary>Gymwire's configuration for sending through this server.</summary>
    public KeyValuePair<string, string>[] Settings() =>
    [
        new("Email:Smtp:Host", "127.0.0.1"),
        new("Email:Smtp:Port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        new("Email:Smtp:From", "Gymwire <reports@gymwire.test>"),
        new("Email:Smtp:UseTls", "false"),
    ];

    public SmtpStandIn()
    {
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = AcceptAsync();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                // UTF-8, as the 8BITMIME it offers lets a client send message text unencoded (ASCII would turn "→" into "???").
                using var reader = new StreamReader(stream, new UTF8Encoding(false));
                await using var writer = new StreamWriter(stream, Encoding.ASCII) { NewLine = "\r\n", AutoFlush = true };
                await Task.Delay(AnswerDelay, _stop.Token);
                await writer.WriteLineAsync("220 localhost test SMTP");
                while (await reader.ReadLineAsync() is { } line)
                {
                    var verb = line.Split(' ', 2)[0].ToUpperInvariant();
                    await Task.Delay(AnswerDelay, _stop.Token);
                    if (verb == "MAIL" && Volatile.Read(ref _mailGate) is { } gate)
                    {
                        Interlocked.Increment(ref _heldMail);
                        await gate.Task.WaitAsync(_stop.Token);
                    }
                    if (Volatile.Read(ref _hold) is { } hold && hold.Verb == verb && Interlocked.CompareExchange(ref _hold, null, hold) == hold)
                    {
                        hold.Arrived.TrySetResult();
                        await hold.Release.Task;
                    }
                    switch (verb)
                    {
                        case "EHLO":
                            await writer.WriteLineAsync("250-localhost");
                            await writer.WriteLineAsync("250 8BITMIME");
                            break;
                        case "MAIL" when Take(ref RejectNext):
                            await writer.WriteLineAsync("554 5.7.1 Rejected by the test server");
                            RefusedOne();
                            break;
                        case "MAIL" when Take(ref RequireLoginNext):
                            await writer.WriteLineAsync("530 5.7.0 Authentication required");
                            RefusedOne();
                            break;
                        case "MAIL":
                            await writer.WriteLineAsync("250 OK");
                            break;
                        case "RCPT" when RefusedRecipients.Keys.Any(a => line.Contains($"<{a}>", StringComparison.OrdinalIgnoreCase)):
                            await writer.WriteLineAsync("550 5.1.1 No such mailbox here");
                            break;
                        case "HELO" or "RCPT" or "RSET" or "NOOP":
                            await writer.WriteLineAsync("250 OK");
                            break;
                        case "DATA":
                            await writer.WriteLineAsync("354 End data with <CR><LF>.<CR><LF>");
                            var data = new StringBuilder();
                            while (await reader.ReadLineAsync() is { } d && d != ".")
                            {
                                data.Append(d.StartsWith("..", StringComparison.Ordinal) ? d[1..] : d).Append("\r\n");
                            }
                            var message = await MimeMessage.LoadAsync(new MemoryStream(Encoding.UTF8.GetBytes(data.ToString())));
                            await writer.WriteLineAsync("250 OK queued");
                            // Recorded once its acceptance is on the wire, so a test that sees it knows the client can too.
                            Accepted(message);
                            break;
                        case "QUIT":
                            await writer.WriteLineAsync("221 Bye");
                            return;
                        default:
                            await writer.WriteLineAsync("502 Command not implemented");
                            break;
                    }
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
            }
        }
    }

    // Counts one down if it is above zero, so a counter never goes negative while another is being used.
    private static bool Take(ref int count)
    {
        var seen = Volatile.Read(ref count);
        while (seen > 0)
        {
            var was = Interlocked.CompareExchange(ref count, seen - 1, seen);
            if (was == seen)
            {
                return true;
            }
            seen = was;
        }
        return false;
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        _listener.Dispose();
        _stop.Dispose();
    }
}
