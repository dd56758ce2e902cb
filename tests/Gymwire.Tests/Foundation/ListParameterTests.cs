using System.Net;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Foundation;

/// <summary>
/// A list in a query (<c>ids.Contains(x.Id)</c>) is sent as one parameter, whatever its length, and finds exactly the
/// rows whose ids it holds (on SQLite the ids travel as JSON text, so their format has to match the stored one). The
/// delivery pipeline's lists run to hundreds of ids; one parameter per id cost SQLite a parse and a bind-by-name of
/// each, and PostgreSQL another prepared statement per list length.
/// </summary>
public abstract class ListParameterTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : ListParameterTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : ListParameterTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task A_list_of_hundreds_of_ids_is_one_parameter_and_matches_exactly_the_listed_rows()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var created = new List<Guid>();
        foreach (var name in new[] { "Ana Silva", "Bo Chen", "Cy Diaz" })
        {
            var member = await (await owner.PostJsonAsync("/api/gym/members", new { name })).AssertStatusAsync(HttpStatusCode.Created);
            created.Add(member.GetProperty("id").GetGuid());
        }
        // Two of the three, among 298 ids that match nothing.
        var ids = Enumerable.Range(0, 298).Select(_ => Guid.NewGuid()).Concat(created.Take(2)).ToList();

        var (parameters, found) = await fx.WithDbAsync(async db =>
        {
            var query = db.Members.AsNoTracking().Where(m => ids.Contains(m.Id)).Select(m => m.Id);
            await using var command = query.CreateDbCommand();
            return (command.Parameters.Count, await query.ToListAsync());
        });

        Assert.Equal(1, parameters);
        Assert.Equal(created.Take(2).Order(), found.Order());
    }
}
