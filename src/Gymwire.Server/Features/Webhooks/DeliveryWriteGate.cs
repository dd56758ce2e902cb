using Gymwire.Data;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// On SQLite the delivery pipeline's writers (dispatcher, claims, releases, the attempt recorder) take turns here
/// before they write. SQLite has one writer per database, and a connection that finds the lock taken blocks its
/// thread in SQLite's busy handler, sleeping with back-off; Microsoft.Data.Sqlite's async calls are synchronous
/// underneath, so those are thread-pool threads, which the HTTP sends need. Awaiting a turn in process costs no
/// thread and no sleep. PostgreSQL locks rows, not the database, so there it is a no-op.
/// </summary>
public sealed class DeliveryWriteGate
{
    private readonly SemaphoreSlim _turn = new(1, 1);

    public async ValueTask<Turn> EnterAsync(GymwireDbContext db, CancellationToken ct)
    {
        if (db.Provider != DatabaseProvider.Sqlite)
        {
            return default;
        }
        await _turn.WaitAsync(ct);
        return new Turn(_turn);
    }

    public readonly struct Turn(SemaphoreSlim? held) : IDisposable
    {
        public void Dispose() => held?.Release();
    }
}
