namespace Gymwire.Data;

/// <summary>
/// One EF Core compiled query per provider. A compiled query binds to the provider of the first context it
/// runs on (its SQL is generated then), so a process that holds both a SQLite and a PostgreSQL context (the
/// tests do) needs one instance of each.
/// </summary>
internal sealed class PerProvider<TQuery>(Func<TQuery> compile) where TQuery : Delegate
{
    private readonly TQuery _sqlite = compile();
    private readonly TQuery _postgres = compile();

    public TQuery For(GymwireDbContext db) => db.Provider == DatabaseProvider.Postgres ? _postgres : _sqlite;
}
