using System.Linq.Expressions;

namespace Gymwire.Infrastructure;

/// <summary><c>?limit=&amp;offset=</c> on owner list endpoints.</summary>
public readonly record struct Paging(int Limit, int Offset)
{
    public const int DefaultLimit = 50;
    public const int MaxLimit = 200;

    public static string? TryCreate(int? limit, int? offset, out Paging paging)
    {
        paging = new Paging(limit ?? DefaultLimit, offset ?? 0);
        if (paging.Limit is < 1 or > MaxLimit)
        {
            return $"'limit' must be between 1 and {MaxLimit}";
        }
        return paging.Offset < 0 ? "'offset' must be 0 or more" : null;
    }

    /// <summary>
    /// This page of <paramref name="rows"/>, newest first. The id breaks ties between equal times, so the order is the
    /// same on every request and no row shows on two pages or on none.
    /// </summary>
    public IQueryable<T> NewestFirst<T, TTime>(IQueryable<T> rows, Expression<Func<T, TTime>> newest) where T : class, IGymRow =>
        rows.OrderByDescending(newest).ThenByDescending(r => r.Id).Skip(Offset).Take(Limit);
}
