using System.Collections.Concurrent;
using System.Data.Common;
using System.Runtime.CompilerServices;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Npgsql;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The delivery pipeline gives PostgreSQL nothing to warn about. Its planner settings (<c>SET LOCAL</c>) once ran
/// outside a transaction block: they still took effect for their batch, but PostgreSQL logged a warning for each, two
/// per claim, thousands a minute in a busy server's log.
/// </summary>
public sealed class PostgresNoticeTests(PostgresNoticeTests.Fixture fx) : IClassFixture<PostgresNoticeTests.Fixture>
{
    /// <summary>The pipeline fixture, with every notice PostgreSQL sends to Gymwire's connections collected.</summary>
    public sealed class Fixture() : PipelineFixture(Store.Postgres)
    {
        public NoticeCollector Notices { get; } = new();

        protected override void ConfigureServices(IServiceCollection services) => services.AddSingleton<IInterceptor>(Notices);
    }

    public sealed class NoticeCollector : DbConnectionInterceptor
    {
        private readonly ConditionalWeakTable<DbConnection, object> _watched = [];

        public ConcurrentQueue<string> Received { get; } = new();

        public override void ConnectionOpened(DbConnection connection, ConnectionEndEventData eventData) => Watch(connection);

        public override Task ConnectionOpenedAsync(DbConnection connection, ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            Watch(connection);
            return Task.CompletedTask;
        }

        private void Watch(DbConnection connection)
        {
            if (connection is NpgsqlConnection npgsql && _watched.TryAdd(connection, this))
            {
                npgsql.Notice += (_, e) => Received.Enqueue($"{e.Notice.Severity}: {e.Notice.MessageText}");
            }
        }
    }

    [Fact]
    public async Task Claiming_delivering_and_waiting_for_the_next_due_delivery_raise_no_warning()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        await gym.CreateWebhookAsync(receiver.Url("/quiet"), "member.joined");
        fx.Notices.Received.Clear();
        for (var i = 0; i < 5; i++)
        {
            await gym.AddMemberAsync($"user_quiet_{i}");
        }
        await Eventually.TrueAsync(() => Task.FromResult(receiver.Requests.Count >= 5), what: "five deliveries");
        // The worker has claimed, recorded, and asked for the next due delivery (none) on the way.
        var queue = fx.Queue();
        Assert.Empty(await queue.ClaimAsync(16, [], [], CancellationToken.None));
        Assert.Null(await queue.NextDueAsync([], [], CancellationToken.None));

        Assert.Empty(fx.Notices.Received);
    }
}
