using System.CommandLine;
using System.Security.Cryptography;
using System.Text;
using Gymwire.Features.Email;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Identity;

namespace Gymwire.Features.Gyms;

/// <summary>
/// "Forgot password" links. A link's token is the owner's id, an expiry and the owner's security stamp, sealed with Data
/// Protection (so it cannot be forged or altered). Resetting changes the stamp in the same UPDATE that checks it, so a
/// link works once, even used twice at the same moment, and a password change or an older link's use voids it too.
/// </summary>
public sealed partial class PasswordResets(
    GymwireDbContext db, UserManager<Owner> users, IDataProtectionProvider protection, TimeProvider clock, IOptions<AuthOptions> options,
    IOptions<EmailOptions> email, PasswordResetMailer mailer, IServer server, ILogger<PasswordResets> logger)
{
    public const string Path = "/reset-password";
    private const string Purpose = "Gymwire.PasswordReset.v1";

    private IDataProtector Protector => protection.CreateProtector(Purpose);

    /// <summary>
    /// Where links point: <c>Auth:PublicUrl</c>, else the address the server listens on when it names a host (never the
    /// request's Host header, which a client chooses: a reset link to an attacker's host would hand them the token).
    /// </summary>
    public string? LinkBase
    {
        get
        {
            if (options.Value.PublicUrl is { Length: > 0 } configured)
            {
                return configured.TrimEnd('/');
            }
            var address = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
            return address is not null && Uri.TryCreate(address, UriKind.Absolute, out var uri)
                   && uri.Host is not ("0.0.0.0" or "[::]" or "::" or "+" or "*")
                ? uri.GetLeftPart(UriPartial.Authority)
                : null;
        }
    }

    /// <summary>Reset by email needs an SMTP server and an address for the links.</summary>
    public bool CanEmail => email.Value.IsConfigured && LinkBase is not null;

    public TimeSpan Lifetime => options.Value.PasswordResetLifetime;

    public string CreateToken(Owner owner)
    {
        var expires = (clock.GetUtcNow() + Lifetime).ToUnixTimeSeconds();
        return Protector.Protect($"{owner.Id:N}|{expires}|{owner.SecurityStamp}");
    }

    /// <summary>
    /// Sends a link if an owner has this email; says nothing either way, so the page cannot be used to find accounts.
    /// The mail goes out after the request is answered (<see cref="PasswordResetMailer"/>): a known address must not
    /// take the SMTP exchange's time longer to answer than an unknown one.
    /// </summary>
    public async Task RequestAsync(string emailAddress)
    {
        var owner = await users.FindByEmailAsync(emailAddress);
        if (owner is null || LinkBase is not { } linkBase)
        {
            LogNoSuchOwner(logger);
            return;
        }
        if (string.IsNullOrEmpty(owner.SecurityStamp))
        {
            await users.UpdateSecurityStampAsync(owner);
        }
        var link = $"{linkBase}{Path}?token={Uri.EscapeDataString(CreateToken(owner))}";
        var minutes = (int)Lifetime.TotalMinutes;
        mailer.Enqueue(owner.Id, new EmailMessage([owner.Email!], "Reset your Gymwire password",
            $"Someone (we hope you) asked to reset the password of the Gymwire owner account {owner.Email}.\n\n" +
            $"Choose a new password here (the link works once, for {minutes} minutes):\n{link}\n\n" +
            "If it was not you, ignore this email: your password stays as it is."));
    }

    /// <summary>The owner a token names, if it is genuine, unexpired and unused; otherwise null.</summary>
    public async Task<Owner?> FindOwnerAsync(string? token, CancellationToken ct)
    {
        if (Read(token) is not { } claim)
        {
            return null;
        }
        var owner = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Id == claim.OwnerId, ct);
        return owner is not null && FixedEquals(owner.SecurityStamp, claim.Stamp) ? owner : null;
    }

    /// <summary>Sets the new password if the token is still good; returns an error message, or null when done.</summary>
    public async Task<string?> ResetAsync(string? token, string newPassword, CancellationToken ct)
    {
        if (Read(token) is not { } claim)
        {
            return InvalidLink;
        }
        var owner = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Id == claim.OwnerId, ct);
        if (owner is null || !FixedEquals(owner.SecurityStamp, claim.Stamp))
        {
            return InvalidLink;
        }
        if (await ValidatePasswordAsync(owner, newPassword) is { } invalid)
        {
            return invalid;
        }
        if (!await SetPasswordAsync(owner.Id, claim.Stamp, newPassword, ct))
        {
            return InvalidLink;
        }
        LogReset(logger, owner.Id);
        return null;
    }

    /// <summary>The CLI's reset: no link, the operator's word. Ends the owner's sessions too.</summary>
    public async Task<string?> SetByOperatorAsync(Owner owner, string newPassword, CancellationToken ct)
    {
        if (await ValidatePasswordAsync(owner, newPassword) is { } invalid)
        {
            return invalid;
        }
        return await SetPasswordAsync(owner.Id, owner.SecurityStamp, newPassword, ct) ? null : "The owner changed concurrently; try again";
    }

    public const string InvalidLink = "This reset link is invalid, expired or already used. Ask for a new one.";

    private async Task<string?> ValidatePasswordAsync(Owner owner, string password)
    {
        foreach (var validator in users.PasswordValidators)
        {
            var result = await validator.ValidateAsync(users, owner, password);
            if (!result.Succeeded)
            {
                return string.Join(" ", result.Errors.Select(e => e.Description));
            }
        }
        return null;
    }

    /// <summary>One conditional UPDATE: the new hash and a new stamp, only while the stamp is the one the token carries.</summary>
    private async Task<bool> SetPasswordAsync(Guid ownerId, string? stamp, string newPassword, CancellationToken ct)
    {
        var hash = users.PasswordHasher.HashPassword(new Owner { Id = ownerId }, newPassword);
        var newStamp = Convert.ToHexString(RandomNumberGenerator.GetBytes(20));
        var concurrency = Guid.NewGuid().ToString();
        var now = clock.GetUtcNow().UtcDateTime;
        var changed = await db.Users.Where(u => u.Id == ownerId && u.SecurityStamp == stamp)
            .ExecuteUpdateAsync(s => s
                .SetProperty(u => u.PasswordHash, hash)
                .SetProperty(u => u.SecurityStamp, newStamp)
                .SetProperty(u => u.ConcurrencyStamp, concurrency), ct);
        if (changed != 1)
        {
            return false;
        }
        // The reset proves the owner holds the mailbox (or the server): every old session ended with the stamp in the UPDATE
        // above (marked revoked here too), and failed sign-ins are forgotten.
        await OwnerSessions.RevokeAllAsync(db, ownerId, keep: null, now, ct);
        var normalized = await db.Users.Where(u => u.Id == ownerId).Select(u => u.NormalizedEmail).FirstAsync(ct);
        var subject = OwnerSignIn.AccountSubject(normalized ?? "");
        await db.SignInThrottles.Where(t => t.Subject == subject).ExecuteDeleteAsync(ct);
        return true;
    }

    private readonly record struct TokenClaim(Guid OwnerId, string Stamp);

    private TokenClaim? Read(string? token)
    {
        if (string.IsNullOrEmpty(token) || token.Length > 2048)
        {
            return null;
        }
        string payload;
        try
        {
            payload = Protector.Unprotect(token);
        }
        catch (CryptographicException)
        {
            return null;
        }
        var parts = payload.Split('|');
        if (parts.Length != 3 || !Guid.TryParseExact(parts[0], "N", out var ownerId) || !long.TryParse(parts[1], out var expires))
        {
            return null;
        }
        return clock.GetUtcNow().ToUnixTimeSeconds() < expires ? new TokenClaim(ownerId, parts[2]) : null;
    }

    private static bool FixedEquals(string? a, string b) =>
        a is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));

    /// <summary><c>gymwire reset-password --email X [--password Y]</c>: sets the given password, or a new random one it prints.</summary>
    public static Command CliCommand(string[] args)
    {
        var emailOption = new Option<string>("--email") { Description = "The owner's email (their login).", Required = true };
        var passwordOption = new Option<string?>("--password")
        {
            Description = "The new password (at least 10 characters). Visible to every local user in ps: prefer --password-stdin. " +
                "Without either, a random one is made and printed.",
        };
        var stdinOption = new Option<bool>("--password-stdin")
        {
            Description = "Read the new password from standard input: one line, or typed twice at a terminal.",
        };
        var command = new Command("reset-password", "Set a new password for an owner (ends their sessions); prints it when generated.")
        {
            emailOption, passwordOption, stdinOption,
        };
        command.TreatUnmatchedTokensAsErrors = false;
        command.SetAction(async (parse, ct) =>
        {
            var (given, passwordError) = PasswordInput.From(parse.GetValue(passwordOption), parse.GetValue(stdinOption), "--password", required: false);
            if (passwordError is not null)
            {
                return await GymwireCli.RefuseAsync(passwordError);
            }
            return await GymwireCli.AdminAsync(args, async (services, ct2) =>
            {
                var address = parse.GetValue(emailOption)!;
                var owner = await services.GetRequiredService<UserManager<Owner>>().FindByEmailAsync(address);
                if (owner is null)
                {
                    return GymwireCli.Fail($"No owner has the email {address}");
                }
                var password = given ?? Secrets.NewHexToken("")[..24];
                var error = await services.GetRequiredService<PasswordResets>().SetByOperatorAsync(owner, password, ct2);
                if (error is not null)
                {
                    return GymwireCli.Fail(error);
                }
                return GymwireCli.Ok(given is null
                    ? new { owner_email = owner.Email, password_reset = true, new_password = password }
                    : (object)new { owner_email = owner.Email, password_reset = true });
            }, ct);
        });
        return command;
    }

    [LoggerMessage(EventId = 7051, Level = LogLevel.Information, Message = "Password reset asked for an email no owner has")]
    private static partial void LogNoSuchOwner(ILogger logger);

    [LoggerMessage(EventId = 7053, Level = LogLevel.Information, Message = "Owner {OwnerId} reset their password; every session ended")]
    private static partial void LogReset(ILogger logger, Guid ownerId);
}
