using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Gymwire.Features.Email;

public sealed record EmailAttachment(string FileName, string ContentType, byte[] Content);

/// <param name="HtmlBody">An HTML alternative to the text (the text stays, for mail programs that show only text).</param>
public sealed record EmailMessage(IReadOnlyList<string> To, string Subject, string TextBody, IReadOnlyList<EmailAttachment>? Attachments = null, string? HtmlBody = null);

/// <summary>Sends one email. Throws <see cref="EmailException"/> with an owner-readable reason when it cannot.</summary>
public interface IEmailSender
{
    bool IsConfigured { get; }

    /// <summary>The server and sender, for the Email tile (never a credential).</summary>
    string Describe();

    /// <summary>
    /// Sends the message to every recipient the server accepts, and returns those it refused (each with the server's
    /// answer); throws when it went to none.
    /// </summary>
    Task<IReadOnlyList<string>> SendAsync(EmailMessage message, CancellationToken ct);
}

public sealed class EmailException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>SMTP through MailKit: one connection per message (notifications and reports are rare).</summary>
public sealed class SmtpEmailSender(IOptions<EmailOptions> options, EmailMetrics metrics, TimeProvider clock) : IEmailSender
{
    private SmtpOptions Smtp => options.Value.Smtp;

    public bool IsConfigured => options.Value.IsConfigured;

    public string Describe() => $"SMTP {Smtp.Host}:{Smtp.Port}{(Smtp.UseTls ? " (TLS)" : "")}, from {Smtp.From}";

    public async Task<IReadOnlyList<string>> SendAsync(EmailMessage message, CancellationToken ct)
    {
        if (!IsConfigured)
        {
            metrics.Sent(EmailMetrics.Outcomes.NotConfigured);
            throw new EmailException("Email is not configured on this server (Email:Smtp:Host).");
        }
        var mime = new MimeMessage();
        mime.From.Add(MailboxAddress.Parse(Smtp.From));
        foreach (var to in message.To)
        {
            // An address stored before owners' emails were checked for MimeKit may not parse: that is this message's
            // failure (recorded, shown), never an exception that escapes to a caller expecting only EmailException.
            if (!MailboxAddress.TryParse(to, out var mailbox))
            {
                metrics.Sent(EmailMetrics.Outcomes.Failed);
                throw new EmailException($"'{to}' is not an email address the message can be sent to.");
            }
            mime.To.Add(mailbox);
        }
        mime.Subject = message.Subject;
        var body = new BodyBuilder { TextBody = message.TextBody, HtmlBody = message.HtmlBody };
        foreach (var a in message.Attachments ?? [])
        {
            body.Attachments.Add(a.FileName, a.Content, ContentType.Parse(a.ContentType));
        }
        mime.Body = body.ToMessageBody();

        using var client = new RefusalsKeepingClient { Timeout = (int)Smtp.Timeout.TotalMilliseconds };
        var security = !Smtp.UseTls ? SecureSocketOptions.None : Smtp.Port == 465 ? SecureSocketOptions.SslOnConnect : SecureSocketOptions.StartTls;
        // MailKit's Timeout bounds each read and write only: a server that answers every command just in time would
        // hold the conversation for many times it. Email:Smtp:Timeout is documented per conversation, so it is a deadline too.
        using var deadline = new CancellationTokenSource(Smtp.Timeout, clock);
        using var conversation = CancellationTokenSource.CreateLinkedTokenSource(ct, deadline.Token);
        var token = conversation.Token;
        try
        {
            await client.ConnectAsync(Smtp.Host, Smtp.Port, security, token);
            if (Smtp.Username.Length > 0)
            {
                await client.AuthenticateAsync(Smtp.Username, Smtp.Password, token);
            }
            await client.SendAsync(mime, token);
        }
        // MailKit reports set-up mistakes with many exception types (a 530 as ServiceNotAuthenticatedException, no STARTTLS
        // or AUTH offered as NotSupportedException, and so on): every one is a mail failure, except the caller's cancellation.
        catch (Exception e) when (!(e is OperationCanceledException && ct.IsCancellationRequested))
        {
            metrics.Sent(EmailMetrics.Outcomes.Failed);
            throw new EmailException(Describe(e), e);
        }
        metrics.Sent(EmailMetrics.Outcomes.Sent);
        try
        {
            await client.DisconnectAsync(quit: true, token);
        }
        // Accepted already: a QUIT the deadline or the server cuts short does not unsend it (a report would go out twice).
        catch (Exception e) when (!(e is OperationCanceledException && ct.IsCancellationRequested))
        {
        }
        return client.Refused;
    }

    /// <summary>
    /// Keeps the recipients the server refuses at RCPT and sends to the others: MailKit's default throws at the first
    /// refusal, so one mistyped address (a 550) would keep a report from every other recipient, on every retry.
    /// </summary>
    private sealed class RefusalsKeepingClient : SmtpClient
    {
        public List<string> Refused { get; } = [];

        protected override void OnRecipientNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response) =>
            Refused.Add($"{mailbox.Address} ({(int)response.StatusCode} {response.Response})");

        // Called when every recipient was refused: without a throw here MailKit would go on to send DATA to nobody.
        protected override void OnNoRecipientsAccepted(MimeMessage message) =>
            throw new SmtpCommandException(SmtpErrorCode.RecipientNotAccepted, SmtpStatusCode.MailboxUnavailable,
                $"every recipient was refused: {string.Join(", ", Refused)}");
    }

    // The server's own words where it gave some; never the credentials.
    private static string Describe(Exception e) => e switch
    {
        SmtpCommandException c => $"The SMTP server refused the message ({(int)c.StatusCode}): {c.Message}",
        AuthenticationException => "The SMTP server refused the username or password (Email:Smtp:Username/Password).",
        MailKit.ServiceNotAuthenticatedException => $"The SMTP server requires a login (530 {e.Message}); set Email:Smtp:Username and Password.",
        NotSupportedException => $"{e.Message} (Email:Smtp:UseTls, Email:Smtp:Port, Email:Smtp:Username)",
        SslHandshakeException => "TLS with the SMTP server failed (Email:Smtp:UseTls, Email:Smtp:Port).",
        System.Net.Sockets.SocketException s => $"Could not connect to the SMTP server: {s.SocketErrorCode}.",
        TimeoutException or OperationCanceledException => "The SMTP server did not answer in time.",
        _ => $"The SMTP conversation failed: {e.Message}",
    };
}
