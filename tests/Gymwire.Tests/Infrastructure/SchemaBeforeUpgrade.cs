using Gymwire.Data;
using Gymwire.Features.Gyms;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Gymwire.Tests.Infrastructure;

/// <summary>
/// A server on a scratch database migrated only up to a named migration, for tests of what the later migrations do to
/// rows written under the older schema (in SQL, since today's entities may not match it).
/// </summary>
public sealed class SchemaBeforeUpgrade(GymwireFixture fx, WebApplication app) : IAsyncDisposable
{
    public WebApplication App { get; } = app;

    public static async Task<SchemaBeforeUpgrade> CreateAsync(GymwireFixture fx, string lastMigration)
    {
        var app = GymwireApp.Build(GymwireApp.CreateBuilder(fx.Arguments(await fx.CreateScratchDatabaseAsync()), b => b.Logging.ClearProviders()));
        await using var scope = app.Services.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<GymwireDbContext>().GetService<IMigrator>().MigrateAsync(lastMigration);
        return new SchemaBeforeUpgrade(fx, app);
    }

    /// <summary>A gym with its owner, made through the server as the older schema allows.</summary>
    public async Task<Guid> CreateGymAsync(string name = "Gym", string? owner = null)
    {
        await using var scope = App.Services.CreateAsyncScope();
        var (gym, _, error) = await scope.ServiceProvider.GetRequiredService<GymProvisioning>()
            .CreateAsync(name, owner ?? $"owner-{Guid.NewGuid():N}@example.com", "correct-horse-battery", CancellationToken.None);
        Assert.True(gym is not null, error);
        return gym.GymId;
    }

    /// <summary>An id as a SQL parameter of the store: SQLite keeps ids as upper-case text.</summary>
    public object Key(Guid id) => fx.Store == Store.Sqlite ? id.ToString().ToUpperInvariant() : id;

    /// <summary>Runs the remaining migrations, as a server's start does.</summary>
    public Task UpgradeAsync() => DatabaseSetup.MigrateAsync(App.Services);

    public ValueTask DisposeAsync() => App.DisposeAsync();
}
