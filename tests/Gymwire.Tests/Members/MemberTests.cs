using System.Net;
using System.Text.Json;
using Gymwire.Features.Events;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Members;

/// <summary>Members join, change and leave through the owner API, each change with its event.</summary>
public abstract class MemberTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : MemberTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : MemberTests(f), IClassFixture<PostgresGymwire>;

    private async Task<List<OutboxEvent>> EventsAsync(Guid gymId) =>
        await fx.WithDbAsync(db => db.OutboxEvents.AsNoTracking().Where(e => e.GymId == gymId).OrderBy(e => e.Sequence).ToListAsync());

    private static JsonElement Data(OutboxEvent e) => JsonDocument.Parse(e.Data).RootElement;

    [Fact]
    public async Task Two_leaves_of_one_member_at_once_fire_member_left_once()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var id = (await (await owner.PostJsonAsync("/api/gym/members", new { name = "Bo Race" })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid();
        // Both read the member still in the gym before either writes.
        fx.ReadBarrier.Arm("members", id, readers: 2);
        var responses = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => owner.DeleteAsync($"/api/gym/members/{id}")));
        // The one that lost the race was told to retry, and the retry finds the member gone already.
        var lost = responses.Where(r => r.StatusCode != HttpStatusCode.OK).ToList();
        Assert.True(lost.Count <= 1, "at most one leave lost the race");
        foreach (var response in lost)
        {
            await response.AssertErrorAsync(HttpStatusCode.ServiceUnavailable);
            Assert.NotNull(response.Headers.RetryAfter);
            await (await owner.DeleteAsync($"/api/gym/members/{id}")).AssertStatusAsync(HttpStatusCode.OK);
        }
        Assert.Equal(["member.joined", "member.left"], (await EventsAsync(gym.GymId)).Select(e => e.Type));
    }

    [Fact]
    public async Task Member_lifecycle_emits_joined_updated_left_in_order()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var created = await (await owner.PostJsonAsync("/api/gym/members", new { name = "Ana Silva", email = "ana@example.com", phone = "+15551234567", user_id = "user_ana" }))
            .AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("user_ana", created.GetProperty("user_id").GetString());
        Assert.Equal("member", created.GetProperty("role").GetString());
        var id = created.GetProperty("id").GetGuid();
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", created.GetProperty("joined_at").GetString());

        var updated = await (await owner.PatchJsonAsync($"/api/gym/members/{id}", new { email = "ana@new.example.com", role = "coach" })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("coach", updated.GetProperty("role").GetString());
        await (await owner.PatchJsonAsync($"/api/gym/members/{id}", new { email = "ana@new.example.com" })).AssertStatusAsync(HttpStatusCode.OK); // no change, no event
        var left = await (await owner.DeleteAsync($"/api/gym/members/{id}")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.NotEqual(JsonValueKind.Null, left.GetProperty("left_at").ValueKind);
        await (await owner.DeleteAsync($"/api/gym/members/{id}")).AssertStatusAsync(HttpStatusCode.OK); // already left: no second event

        var events = await EventsAsync(gym.GymId);
        Assert.Equal(["member.joined", "member.updated", "member.left"], events.Select(e => e.Type));
        Assert.Equal($$"""{"user_id":"user_ana","member_id":"{{id}}"}""", events[0].Data);
        Assert.Equal(["email", "role"], Data(events[1]).GetProperty("changes").EnumerateArray().Select(x => x.GetString()));
        Assert.Equal(id, Data(events[1]).GetProperty("member_id").GetGuid());
        Assert.Equal($$"""{"user_id":"user_ana","member_id":"{{id}}"}""", events[2].Data);
        Assert.True(events[0].Sequence < events[1].Sequence && events[1].Sequence < events[2].Sequence);

        var list = await (await owner.GetAsync("/api/gym/members")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Empty(list.GetProperty("members").EnumerateArray());
        var all = await (await owner.GetAsync("/api/gym/members?include_left=true")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Single(all.GetProperty("members").EnumerateArray());
    }

    [Fact]
    public async Task Duplicate_user_id_is_409_and_writes_nothing()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "A", user_id = "user_dup" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "B", user_id = "user_dup" })).AssertErrorAsync(HttpStatusCode.Conflict);
        Assert.Single(await EventsAsync(gym.GymId));
    }
}
