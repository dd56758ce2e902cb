namespace Gymwire.Features.Gyms;

/// <summary>Owner API sessions: <c>gws_</c> + 64 hex, stored as SHA-256, revoked on logout.</summary>
public sealed class OwnerSessionValidator(TimeProvider clock) : IBearerTokenValidator
{
    public const string TokenPrefix = "gws_";
    public const string SessionIdClaim = "session_id";

    public string Prefix => TokenPrefix;

    public async ValueTask<BearerValidation> ValidateAsync(ReadOnlyMemory<char> token, HttpContext context)
    {
        if (token.Length != TokenPrefix.Length + 64)
        {
            return BearerValidation.Fail("Invalid session token");
        }
        var hash = Secrets.Sha256(token.ToString());
        var db = context.RequestServices.GetRequiredService<GymwireDbContext>();
        // One query: the row, and whether the owner's security stamp is still the one the session was given.
        var session = await db.OwnerSessions.AsNoTracking()
            .Where(s => s.TokenHash == hash)
            .Select(s => new
            {
                s.Id, s.OwnerId, s.GymId, s.ExpiresAt, s.RevokedAt,
                Current = db.Users.Any(u => u.Id == s.OwnerId && u.SecurityStamp == s.SecurityStamp),
            })
            .FirstOrDefaultAsync(context.RequestAborted);
        if (session is null || session.RevokedAt is not null || !session.Current)
        {
            return BearerValidation.Fail("Invalid or revoked session token");
        }
        if (session.ExpiresAt <= clock.GetUtcNow().UtcDateTime)
        {
            return BearerValidation.Fail("Session token expired; log in again");
        }
        var identity = new GymwireIdentity(
        [
            new Claim(GymwireClaims.ActorId, session.OwnerId.ToString()),
            new Claim(GymwireClaims.GymId, session.GymId.ToString()),
            new Claim(GymwireClaims.Actor, GymwireClaims.OwnerActor),
            new Claim(SessionIdClaim, session.Id.ToString()),
        ], BearerAuthenticationHandler.SchemeName);
        return BearerValidation.Success(new ClaimsPrincipal(identity));
    }
}

/// <summary>
/// Owner sessions, API and dashboard alike, live in <c>owner_sessions</c>: a dashboard cookie carries its row's id, and
/// every request checks the row, so logout, "sign out everywhere" and a password change end sessions on every node at once.
/// </summary>
public static class OwnerSessions
{
    public static OwnerSession Add(GymwireDbContext db, Owner owner, string token, DateTime now, TimeSpan lifetime)
    {
        var session = new OwnerSession
        {
            Id = Guid.CreateVersion7(now),
            OwnerId = owner.Id,
            GymId = owner.GymId,
            TokenHash = Secrets.Sha256(token),
            CreatedAt = now,
            ExpiresAt = now + lifetime,
            // The stamp of the row whose password was just checked: a password change between that check and this
            // INSERT rotates the owner's stamp, so the session is born already ended.
            SecurityStamp = owner.SecurityStamp,
        };
        db.OwnerSessions.Add(session);
        return session;
    }

    /// <summary>A dashboard session: its cookie names the row; the random token is discarded, so it can never be used as a bearer.</summary>
    public static OwnerSession AddForCookie(GymwireDbContext db, Owner owner, DateTime now, TimeSpan lifetime) =>
        Add(db, owner, Secrets.NewHexToken("cookie_"), now, lifetime);

    /// <summary>
    /// True while the session exists for that owner, is not revoked, has not reached its absolute expiry and the owner's
    /// security stamp is still the session's: every password change rotates the stamp in the UPDATE that sets the
    /// password, so that UPDATE alone ends every session, even one saved just after it.
    /// </summary>
    public static Task<bool> IsActiveAsync(GymwireDbContext db, Guid sessionId, Guid ownerId, DateTime now, CancellationToken ct) =>
        db.OwnerSessions.AnyAsync(s => s.Id == sessionId && s.OwnerId == ownerId && s.RevokedAt == null && s.ExpiresAt > now
            && db.Users.Any(u => u.Id == s.OwnerId && u.SecurityStamp == s.SecurityStamp), ct);

    public static Task<int> RevokeAsync(GymwireDbContext db, Guid sessionId, DateTime now, CancellationToken ct) =>
        db.OwnerSessions.Where(s => s.Id == sessionId && s.RevokedAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(x => x.RevokedAt, now), ct);

    /// <summary>
    /// Marks every live session of the owner revoked, except <paramref name="keep"/> when given. After a password change
    /// this is bookkeeping: the rotated security stamp has ended those sessions already.
    /// </summary>
    public static Task<int> RevokeAllAsync(GymwireDbContext db, Guid ownerId, Guid? keep, DateTime now, CancellationToken ct) =>
        db.OwnerSessions.Where(s => s.OwnerId == ownerId && s.RevokedAt == null && s.ExpiresAt > now && (keep == null || s.Id != keep.Value))
            .ExecuteUpdateAsync(s => s.SetProperty(x => x.RevokedAt, now), ct);

    /// <summary>
    /// Deletes at most <paramref name="batchSize"/> sessions that expired or were revoked before <paramref name="cutoff"/>
    /// (the retention clean-up calls it until a batch comes back short); returns how many went. An ended session never
    /// becomes valid again, so no concurrent write can make a chosen row worth keeping.
    /// </summary>
    public static Task<int> DeleteEndedBatchAsync(GymwireDbContext db, DateTime cutoff, int batchSize, CancellationToken ct)
    {
        var batch = db.OwnerSessions.Where(s => s.ExpiresAt < cutoff || s.RevokedAt < cutoff).OrderBy(s => s.Id).Take(batchSize).Select(s => s.Id);
        return db.OwnerSessions.Where(s => batch.Contains(s.Id)).ExecuteDeleteAsync(ct);
    }
}
