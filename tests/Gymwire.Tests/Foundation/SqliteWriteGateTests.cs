using System.Net;
using Gymwire.Data;
using Gymwire.Features.Leads;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Gymwire.Tests.Foundation;

/// <summary>
/// On SQLite every <c>SaveChanges</c> that opens its own transaction takes the process's write lock, so
/// concurrent writers queue in process instead of sleeping in SQLite's busy handler. A save that fails or is
/// cancelled gives back only a lock it took; a save inside a held lock or a transaction the caller holds does not wait.
/// The "not completed" checks are exact: Microsoft.Data.Sqlite runs synchronously, so a save that is not waiting
/// for the gate has finished when <c>SaveChangesAsync</c> returns.
/// </summary>
public sealed class SqliteWriteGateTests(SqliteGymwire fx) : IClassFixture<SqliteGymwire>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private SqliteWriteGate Gate => fx.Services.GetRequiredService<SqliteWriteGate>();

    private static Lead NewLead(Guid gymId, string name) => new()
    {
        Id = Guid.CreateVersion7(), GymId = gymId, FirstName = name, Source = "test", CreatedAt = DateTime.UtcNow,
    };

    /// <summary>Contexts of their own scopes, disposed together.</summary>
    private sealed class Contexts(IServiceProvider services) : IAsyncDisposable
    {
        private readonly List<AsyncServiceScope> _scopes = [];

        public GymwireDbContext New()
        {
            var scope = services.CreateAsyncScope();
            _scopes.Add(scope);
            return scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var scope in _scopes)
            {
                await scope.DisposeAsync();
            }
        }
    }

    /// <summary>The holder still holds the lock: another writer waits until the holder gives it back, then gets it.</summary>
    private async Task AssertStillHeldAsync(SqliteWriteGate.WriteLock held, GymwireDbContext other)
    {
        var next = Gate.EnterAsync(other, CancellationToken.None).AsTask();
        Assert.False(next.IsCompleted);
        held.Dispose();
        (await next.WaitAsync(Patience)).Dispose();
    }

    private async Task<int> LeadsAsync(Guid gymId) => await fx.WithDbAsync(db => db.Leads.CountAsync(l => l.GymId == gymId));

    [Fact]
    public async Task A_save_waits_for_the_turn_another_writer_holds_and_commits_when_it_is_given_back()
    {
        var gym = await fx.CreateGymAsync();
        await using var contexts = new Contexts(fx.Services);
        var (holder, writer) = (contexts.New(), contexts.New());

        var held = await Gate.EnterAsync(holder, CancellationToken.None).AsTask().WaitAsync(Patience);
        writer.Leads.Add(NewLead(gym.GymId, "Waiting"));
        var save = writer.SaveChangesAsync();
        Assert.False(save.IsCompleted);
        Assert.Equal(0, await LeadsAsync(gym.GymId));

        held.Dispose();
        Assert.Equal(1, await save.WaitAsync(Patience));
        Assert.Equal(1, await LeadsAsync(gym.GymId));
        // The save gave the lock back.
        (await Gate.EnterAsync(holder, CancellationToken.None).AsTask().WaitAsync(Patience)).Dispose();
    }

    [Fact]
    public async Task A_failed_save_gives_its_turn_back_and_writes_nothing()
    {
        var gym = await fx.CreateGymAsync();
        var lead = NewLead(gym.GymId, "Once");
        await fx.WithDbAsync(async db =>
        {
            db.Leads.Add(lead);
            return await db.SaveChangesAsync();
        });

        await fx.WithDbAsync(async db =>
        {
            // The same primary key again, beside a new row: the whole save is rolled back.
            db.Leads.Add(NewLead(gym.GymId, "New"));
            var duplicate = NewLead(gym.GymId, "Duplicate");
            duplicate.Id = lead.Id;
            db.Leads.Add(duplicate);
            await Assert.ThrowsAsync<DbUpdateException>(() => db.SaveChangesAsync());
            return 0;
        });
        Assert.Equal(1, await LeadsAsync(gym.GymId));

        await using var scope = fx.Services.CreateAsyncScope();
        var next = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        (await Gate.EnterAsync(next, CancellationToken.None).AsTask().WaitAsync(Patience)).Dispose();
        next.Leads.Add(NewLead(gym.GymId, "After"));
        Assert.Equal(1, await next.SaveChangesAsync().WaitAsync(Patience));
    }

    [Fact]
    public async Task A_save_that_throws_before_it_writes_gives_its_turn_back_when_its_context_is_disposed()
    {
        var gym = await fx.CreateGymAsync();
        await using (var scope = fx.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            var lead = NewLead(gym.GymId, "Rekeyed");
            db.Leads.Add(lead);
            await db.SaveChangesAsync();
            // A key changed on a tracked entity: change detection throws after the lock was taken and before EF's
            // save begins, where EF reports neither failure nor cancellation to the interceptors.
            lead.Id = Guid.CreateVersion7();
            await Assert.ThrowsAsync<InvalidOperationException>(() => db.SaveChangesAsync());
        }

        await using var contexts = new Contexts(fx.Services);
        var next = contexts.New();
        (await Gate.EnterAsync(next, CancellationToken.None).AsTask().WaitAsync(Patience)).Dispose();
        next.Leads.Add(NewLead(gym.GymId, "After"));
        Assert.Equal(1, await next.SaveChangesAsync().WaitAsync(Patience));
        Assert.Equal(2, await LeadsAsync(gym.GymId));
    }

    [Fact]
    public async Task A_save_cancelled_while_it_waits_leaves_the_holders_turn_alone()
    {
        var gym = await fx.CreateGymAsync();
        await using var contexts = new Contexts(fx.Services);
        var (holder, writer, third) = (contexts.New(), contexts.New(), contexts.New());

        var held = await Gate.EnterAsync(holder, CancellationToken.None).AsTask().WaitAsync(Patience);
        using var cancel = new CancellationTokenSource();
        writer.Leads.Add(NewLead(gym.GymId, "Cancelled"));
        var save = writer.SaveChangesAsync(cancel.Token);
        Assert.False(save.IsCompleted);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => save.WaitAsync(Patience));

        await AssertStillHeldAsync(held, third);
        Assert.Equal(0, await LeadsAsync(gym.GymId));
    }

    [Fact]
    public async Task A_save_that_waits_longer_than_the_busy_timeout_fails_and_leaves_the_holders_turn_alone()
    {
        var gym = await fx.CreateGymAsync();
        await using var contexts = new Contexts(fx.Services);
        var (holder, writer, third) = (contexts.New(), contexts.New(), contexts.New());

        var held = await Gate.EnterAsync(holder, CancellationToken.None).AsTask().WaitAsync(Patience);
        writer.Leads.Add(NewLead(gym.GymId, "Timed out"));
        var save = writer.SaveChangesAsync();
        fx.Clock.Advance(SqliteWriteGate.SaveTimeout - TimeSpan.FromSeconds(1));
        Assert.False(save.IsCompleted);
        fx.Clock.Advance(TimeSpan.FromSeconds(1));
        await Assert.ThrowsAsync<TimeoutException>(() => save.WaitAsync(Patience));

        await AssertStillHeldAsync(held, third);
        Assert.Equal(0, await LeadsAsync(gym.GymId));
    }

    [Fact]
    public async Task A_save_inside_the_holders_turn_or_inside_a_callers_transaction_does_not_wait()
    {
        var gym = await fx.CreateGymAsync();
        await using var contexts = new Contexts(fx.Services);
        var (holder, other) = (contexts.New(), contexts.New());

        var held = await Gate.EnterAsync(holder, CancellationToken.None).AsTask().WaitAsync(Patience);
        holder.Leads.Add(NewLead(gym.GymId, "Holder"));
        var own = holder.SaveChangesAsync();
        Assert.True(own.IsCompleted);
        Assert.Equal(1, await own);
        // ... and that save did not give the holder's lock away.
        await AssertStillHeldAsync(held, other);

        // A transaction the caller began holds SQLite's write lock already; its saves do not queue for the gate.
        held = await Gate.EnterAsync(holder, CancellationToken.None).AsTask().WaitAsync(Patience);
        await using (var tx = await other.Database.BeginTransactionAsync())
        {
            other.Leads.Add(NewLead(gym.GymId, "In a transaction"));
            var inTransaction = other.SaveChangesAsync();
            Assert.True(inTransaction.IsCompleted);
            await inTransaction;
            await tx.CommitAsync();
        }
        held.Dispose();
        Assert.Equal(2, await LeadsAsync(gym.GymId));
    }

    // 25: under the owner's mutation limit (30 a minute).
    [Fact]
    public async Task Concurrent_actions_all_commit_with_their_events()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var created = await Task.WhenAll(Enumerable.Range(0, 25).Select(i =>
            owner.PostJsonAsync("/api/gym/leads", new { first_name = $"Lead {i}", email = $"lead{i}@example.com" })));
        Assert.All(created, r => Assert.Equal(HttpStatusCode.Created, r.StatusCode));
        Assert.Equal(25, await LeadsAsync(gym.GymId));
        Assert.Equal(25, await fx.WithDbAsync(db => db.OutboxEvents.CountAsync(e => e.GymId == gym.GymId && e.Type == "lead.created")));
    }
}
