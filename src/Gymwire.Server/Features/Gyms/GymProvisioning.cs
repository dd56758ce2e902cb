using Microsoft.AspNetCore.Identity;

namespace Gymwire.Features.Gyms;

public sealed record ProvisionedGym(Guid GymId, Guid OwnerId, string OwnerEmail);

/// <summary>Creates a gym together with its owner account, atomically (set-up page, CLI, demo).</summary>
public sealed class GymProvisioning(GymwireDbContext db, UserManager<Owner> users, TimeProvider clock)
{
    /// <summary>Returns the new gym, or a client-facing error with its status (400 invalid input, 409 email taken).</summary>
    public Task<(ProvisionedGym? Gym, int Status, string? Error)> CreateAsync(string? name, string? email, string? password, CancellationToken ct) =>
        CreateAsync(name, email, password, null, ct);

    /// <param name="timeZone">An IANA id; UTC when not given.</param>
    /// <summary>What the owners' email and user name columns hold (ASP.NET Core Identity's schema), short of an address's 320.</summary>
    public const int OwnerEmailMaxLength = 256;

    public Task<(ProvisionedGym? Gym, int Status, string? Error)> CreateAsync(string? name, string? email, string? password, string? timeZone,
        CancellationToken ct) =>
        CreateAsync(name, email, password, timeZone, onlyIfFirst: false, ct);

    /// <summary>What <see cref="CreateFirstAsync"/> answers (status 409) when a gym exists already.</summary>
    public const string AlreadySetUp = "Gymwire is already set up";

    /// <summary>
    /// First-run set-up: creates the gym only if there is none, checked and created in one transaction that no other
    /// gym creation can interleave with, on any node (SQLite: the transaction holds the database's write lock from its
    /// start; PostgreSQL: it locks the gyms table against inserts first). Otherwise 409 <see cref="AlreadySetUp"/>.
    /// </summary>
    public Task<(ProvisionedGym? Gym, int Status, string? Error)> CreateFirstAsync(string? name, string? email, string? password, string? timeZone,
        CancellationToken ct) =>
        CreateAsync(name, email, password, timeZone, onlyIfFirst: true, ct);

    private async Task<(ProvisionedGym? Gym, int Status, string? Error)> CreateAsync(string? name, string? email, string? password, string? timeZone,
        bool onlyIfFirst, CancellationToken ct)
    {
        var v = new RequestValidator()
            .Required(name, "name")
            .Required(email, "owner_email", OwnerEmailMaxLength).Mailbox(email, "owner_email")
            .Required(password, "owner_password", 256);
        if (v.Error is { } invalid)
        {
            return (null, 400, invalid);
        }
        var zone = GymTimeZones.Utc;
        if (timeZone is not null)
        {
            if (GymTimeZones.TryFind(timeZone, out var zoneError) is not { } found)
            {
                return (null, 400, zoneError);
            }
            zone = GymTimeZones.Name(found);
        }
        if (await users.FindByEmailAsync(email!) is not null)
        {
            return (null, 409, "An owner account with this email already exists");
        }

        var now = clock.GetUtcNow().UtcDateTime;
        var strategy = db.Database.CreateExecutionStrategy();
        return await strategy.ExecuteAsync(async () =>
        {
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            if (onlyIfFirst)
            {
                if (db.Provider == DatabaseProvider.Postgres)
                {
                    // Conflicts with itself and with every insert into gyms, so a concurrent first run waits and then sees this gym.
                    await db.Database.ExecuteSqlRawAsync("LOCK TABLE gyms IN SHARE ROW EXCLUSIVE MODE", ct);
                }
                if (await db.Gyms.AnyAsync(ct))
                {
                    await tx.RollbackAsync(ct);
                    return ((ProvisionedGym?)null, 409, (string?)AlreadySetUp);
                }
            }
            var gym = new Gym { Id = Guid.CreateVersion7(now), Name = name!.Trim(), CreatedAt = now, TimeZone = zone };
            db.Gyms.Add(gym);
            await db.SaveChangesAsync(ct);
            var owner = new Owner { Id = Guid.CreateVersion7(now), GymId = gym.Id, Email = email, UserName = email, CreatedAt = now };
            var created = await users.CreateAsync(owner, password!);
            if (!created.Succeeded)
            {
                await tx.RollbackAsync(ct);
                db.ChangeTracker.Clear();
                var duplicate = created.Errors.Any(e => e.Code is "DuplicateEmail" or "DuplicateUserName");
                return duplicate
                    ? ((ProvisionedGym?)null, 409, (string?)"An owner account with this email already exists")
                    : (null, 400, string.Join(" ", created.Errors.Select(e => e.Description)));
            }
            await tx.CommitAsync(ct);
            return (new ProvisionedGym(gym.Id, owner.Id, email!), 201, null);
        });
    }

    public Task<bool> AnyGymAsync(CancellationToken ct) => db.Gyms.AnyAsync(ct);
}
