using System.Net;
using System.Net.Sockets;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Gymwire.Features.Gyms;

/// <summary>
/// Failed sign-ins counted for one subject: an email address (<c>account:</c> + SHA-256 of the normalized email, whether
/// or not an owner has it) or a client address (<c>client:</c> + address). Shared by every node through the database.
/// </summary>
public sealed class SignInThrottle
{
    public required string Subject { get; set; }
    public int FailedCount { get; set; }
    public DateTime? WindowStartedAt { get; set; }
    public DateTime? LockedUntil { get; set; }
}

internal sealed class SignInThrottleConfiguration : IEntityTypeConfiguration<SignInThrottle>
{
    public void Configure(EntityTypeBuilder<SignInThrottle> b)
    {
        b.ToTable("sign_in_throttles");
        b.HasKey(x => x.Subject);
        b.Property(x => x.Subject).HasMaxLength(80);
        b.HasIndex(x => x.WindowStartedAt);
    }
}

public enum SignInOutcome
{
    Succeeded,
    /// <summary>Wrong password or no such account: the same answer for both.</summary>
    Invalid,
    /// <summary>Too many failures for this email (owner or not) within <see cref="AuthOptions.LockoutDuration"/>.</summary>
    Locked,
    /// <summary>Too many failures from this client address within <see cref="AuthOptions.ClientLockoutDuration"/>.</summary>
    ClientThrottled,
    /// <summary>More password checks in flight on this node than <see cref="AuthOptions.MaxConcurrentPasswordChecks"/> allows.</summary>
    Busy,
}

/// <param name="Owner">The signed-in owner; on <see cref="SignInOutcome.Invalid"/>, the owner whose password was wrong (for logs), if any.</param>
public readonly record struct SignInResult(SignInOutcome Outcome, Owner? Owner = null, TimeSpan RetryAfter = default)
{
    public int RetryAfterSeconds => Math.Max(1, (int)Math.Ceiling(RetryAfter.TotalSeconds));
}

/// <summary>Bounds how many password hashes a node verifies at once, so a sign-in flood cannot starve other requests.</summary>
public sealed class PasswordCheckLimiter(IOptions<AuthOptions> options) : IDisposable
{
    private readonly ConcurrencyLimiter _limiter = new(new ConcurrencyLimiterOptions
    {
        PermitLimit = options.Value.PasswordCheckConcurrency,
        QueueLimit = options.Value.PasswordCheckConcurrency * 8,
        QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
    });

    public ValueTask<RateLimitLease> AcquireAsync(CancellationToken ct) => _limiter.AcquireAsync(1, ct);

    public void Dispose() => _limiter.Dispose();
}

/// <summary>
/// Checks an owner's password under the sign-in rules (docs/configuration.md, "Auth"). Each attempt first reserves a
/// failure for its client address and for the email with one atomic UPDATE each, and checks no password when either is
/// over its limit; a success gives both back. Concurrent guesses therefore count exactly as sequential ones, on any node.
/// </summary>
public sealed class OwnerSignIn(
    GymwireDbContext db, UserManager<Owner> users, TimeProvider clock, IOptions<AuthOptions> options,
    PasswordCheckLimiter limiter, SqliteWriteGate gate)
{
    private static readonly string DummyHash = new PasswordHasher<Owner>().HashPassword(new Owner(), "not-a-real-password");

    public async Task<SignInResult> SignInAsync(string email, string password, IPAddress? client, CancellationToken ct)
    {
        var o = options.Value;
        await PruneNowAndThenAsync(ct);
        var clientSubject = ClientSubject(client);
        if (await ReserveAsync(clientSubject, o.ClientMaxFailedAttempts, o.ClientLockoutDuration, ct) is { } clientWait)
        {
            return new SignInResult(SignInOutcome.ClientThrottled, RetryAfter: clientWait);
        }
        var accountSubject = AccountSubject(users.NormalizeEmail(email));
        if (await ReserveAsync(accountSubject, o.MaxFailedAttempts, o.LockoutDuration, ct) is { } accountWait)
        {
            return new SignInResult(SignInOutcome.Locked, RetryAfter: accountWait);
        }
        using var permit = await limiter.AcquireAsync(ct);
        if (!permit.IsAcquired)
        {
            // Not the client's mistake: give both reservations back.
            await SucceededAsync(clientSubject, o.ClientMaxFailedAttempts, accountSubject: null, ct);
            await GiveBackAsync(accountSubject, o.MaxFailedAttempts, ct);
            return new SignInResult(SignInOutcome.Busy, RetryAfter: TimeSpan.FromSeconds(1));
        }
        var owner = await users.FindByEmailAsync(email);
        if (owner is null)
        {
            // Spend the time of a real check, so response time does not reveal which emails have accounts.
            users.PasswordHasher.VerifyHashedPassword(new Owner(), DummyHash, password);
            return new SignInResult(SignInOutcome.Invalid);
        }
        if (!await users.CheckPasswordAsync(owner, password))
        {
            // The owner is for the server's log only; the client gets the same answer as for an unknown email.
            return new SignInResult(SignInOutcome.Invalid, owner);
        }
        await SucceededAsync(clientSubject, o.ClientMaxFailedAttempts, accountSubject, ct);
        return new SignInResult(SignInOutcome.Succeeded, owner);
    }

    /// <summary>Changes an owner's password (API and dashboard). Returns an error message and status, or null when changed.</summary>
    public async Task<(string? Error, int Status)> ChangePasswordAsync(Owner owner, string current, string next, Guid? keepSession,
        HttpContext http, CancellationToken ct)
    {
        var check = await CheckCurrentPasswordAsync(owner, current, ct);
        if (check.Outcome == SignInOutcome.Invalid)
        {
            return ("The current password is incorrect", StatusCodes.Status400BadRequest);
        }
        if (check.Outcome != SignInOutcome.Succeeded)
        {
            http.Response.Headers.RetryAfter = check.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
            return (TooManyMessage(check), StatusCodes.Status429TooManyRequests);
        }
        var oldStamp = owner.SecurityStamp;
        using (await gate.EnterAsync(db, ct))
        {
            // The new password and stamp (which ends every other session) and the kept session's new stamp commit together:
            // an interruption in between must neither end the owner's own session nor leave any other alive.
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            var changed = await users.ChangePasswordAsync(owner, current, next);
            if (!changed.Succeeded)
            {
                await tx.RollbackAsync(ct);
                return (string.Join(" ", changed.Errors.Select(e => e.Description)), StatusCodes.Status400BadRequest);
            }
            if (keepSession is { } keep)
            {
                // Only a session that was valid under the old stamp carries over.
                await db.OwnerSessions.Where(s => s.Id == keep && s.OwnerId == owner.Id && s.RevokedAt == null && s.SecurityStamp == oldStamp)
                    .ExecuteUpdateAsync(s => s.SetProperty(x => x.SecurityStamp, owner.SecurityStamp), ct);
            }
            await OwnerSessions.RevokeAllAsync(db, owner.Id, keepSession, clock.GetUtcNow().UtcDateTime, ct);
            await tx.CommitAsync(ct);
        }
        return (null, StatusCodes.Status204NoContent);
    }

    public static string TooManyMessage(SignInResult result) => result.Outcome switch
    {
        SignInOutcome.Locked => "Too many failed sign-in attempts; try again later",
        SignInOutcome.ClientThrottled => $"Too many failed sign-in attempts from this address; retry after {result.RetryAfterSeconds} seconds",
        _ => $"Too many sign-in attempts at once; retry after {result.RetryAfterSeconds} seconds",
    };

    /// <summary>Re-checks a signed-in owner's current password (changing it): counts toward the same lockout as sign-in.</summary>
    public async Task<SignInResult> CheckCurrentPasswordAsync(Owner owner, string password, CancellationToken ct)
    {
        var o = options.Value;
        var accountSubject = AccountSubject(owner.NormalizedEmail ?? users.NormalizeEmail(owner.Email) ?? "");
        if (await ReserveAsync(accountSubject, o.MaxFailedAttempts, o.LockoutDuration, ct) is { } wait)
        {
            return new SignInResult(SignInOutcome.Locked, RetryAfter: wait);
        }
        using var permit = await limiter.AcquireAsync(ct);
        if (!permit.IsAcquired)
        {
            await GiveBackAsync(accountSubject, o.MaxFailedAttempts, ct);
            return new SignInResult(SignInOutcome.Busy, RetryAfter: TimeSpan.FromSeconds(1));
        }
        if (!await users.CheckPasswordAsync(owner, password))
        {
            return new SignInResult(SignInOutcome.Invalid);
        }
        await ForgetAsync(accountSubject, ct);
        return new SignInResult(SignInOutcome.Succeeded, owner);
    }

    internal static string AccountSubject(string normalizedEmail) => "account:" + Convert.ToHexStringLower(Secrets.Sha256(normalizedEmail));

    /// <summary>The client's address; IPv6 clients by their /64, which one host usually owns whole.</summary>
    internal static string ClientSubject(IPAddress? address)
    {
        if (address is null)
        {
            return "client:unknown";
        }
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }
        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            var bytes = address.GetAddressBytes();
            Array.Clear(bytes, 8, 8);
            return "client:" + new IPAddress(bytes) + "/64";
        }
        return "client:" + address;
    }

    /// <summary>
    /// Counts one failure for <paramref name="subject"/> before the password is checked, unless it is locked. Failures
    /// older than <paramref name="period"/> are forgotten; the one that reaches <paramref name="max"/> locks the subject
    /// for <paramref name="period"/>. Returns null when counted, or how long the lock still lasts.
    /// </summary>
    private async Task<TimeSpan?> ReserveAsync(string subject, int max, TimeSpan period, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var forgetBefore = now - period;
        var lockUntil = now + period;
        int reserved;
        using (await gate.EnterAsync(db, ct))
        {
            await db.Database.ExecuteSqlAsync(
                $"INSERT INTO sign_in_throttles (subject, failed_count) VALUES ({subject}, 0) ON CONFLICT (subject) DO NOTHING", ct);
            // One statement: PostgreSQL re-evaluates the WHERE on the row a concurrent UPDATE left, SQLite runs one writer,
            // so no two attempts can take the same slot. A lock that has ended (LockedUntil set and in the past) restarts the count.
            reserved = await db.SignInThrottles
                .Where(t => t.Subject == subject && (t.LockedUntil == null || t.LockedUntil <= now))
                .ExecuteUpdateAsync(s => s
                    .SetProperty(t => t.FailedCount,
                        t => t.WindowStartedAt == null || t.WindowStartedAt <= forgetBefore || t.LockedUntil != null ? 1 : t.FailedCount + 1)
                    .SetProperty(t => t.WindowStartedAt,
                        t => t.WindowStartedAt == null || t.WindowStartedAt <= forgetBefore || t.LockedUntil != null ? now : t.WindowStartedAt)
                    .SetProperty(t => t.LockedUntil,
                        t => (t.WindowStartedAt == null || t.WindowStartedAt <= forgetBefore || t.LockedUntil != null ? 1 : t.FailedCount + 1) >= max
                            ? lockUntil
                            : (DateTime?)null), ct);
        }
        if (reserved == 1)
        {
            return null;
        }
        var until = await db.SignInThrottles.Where(t => t.Subject == subject).Select(t => t.LockedUntil).FirstOrDefaultAsync(ct);
        return until is { } u && u > now ? u - now : TimeSpan.FromSeconds(1);
    }

    /// <summary>A success: the client's reservation is given back and the email's failures are forgotten.</summary>
    private async Task SucceededAsync(string clientSubject, int clientMax, string? accountSubject, CancellationToken ct)
    {
        await GiveBackAsync(clientSubject, clientMax, ct);
        if (accountSubject is not null)
        {
            await ForgetAsync(accountSubject, ct);
        }
    }

    private async Task GiveBackAsync(string subject, int max, CancellationToken ct)
    {
        using (await gate.EnterAsync(db, ct))
        {
            // If this very reservation reached the limit it also set the lock; with it given back, the lock goes too.
            await db.SignInThrottles.Where(t => t.Subject == subject && t.FailedCount > 0)
                .ExecuteUpdateAsync(s => s
                    .SetProperty(t => t.FailedCount, t => t.FailedCount - 1)
                    .SetProperty(t => t.LockedUntil, t => t.FailedCount - 1 < max ? (DateTime?)null : t.LockedUntil), ct);
        }
    }

    private async Task ForgetAsync(string subject, CancellationToken ct)
    {
        using (await gate.EnterAsync(db, ct))
        {
            await db.SignInThrottles.Where(t => t.Subject == subject).ExecuteDeleteAsync(ct);
        }
    }

    private static long _lastPruneTicks;

    // Every ten minutes per node, on a sign-in: the table holds only subjects that failed recently.
    private async Task PruneNowAndThenAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcTicks;
        var last = Interlocked.Read(ref _lastPruneTicks);
        if (now - last >= TimeSpan.FromMinutes(10).Ticks && Interlocked.CompareExchange(ref _lastPruneTicks, now, last) == last)
        {
            await PruneAsync(ct);
        }
    }

    /// <summary>Deletes counters with nothing left to remember: no lock in force and no failure within the longer period.</summary>
    public async Task<int> PruneAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var o = options.Value;
        var before = now - (o.LockoutDuration > o.ClientLockoutDuration ? o.LockoutDuration : o.ClientLockoutDuration);
        using (await gate.EnterAsync(db, ct))
        {
            return await db.SignInThrottles
                .Where(t => (t.LockedUntil == null || t.LockedUntil <= now) && (t.WindowStartedAt == null || t.WindowStartedAt <= before))
                .ExecuteDeleteAsync(ct);
        }
    }
}
