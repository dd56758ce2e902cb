using System.Linq.Expressions;

namespace Gymwire.Infrastructure;

/// <summary>A row that belongs to one gym: owner endpoints read it only for a caller of that gym.</summary>
public interface IGymRow
{
    Guid Id { get; }
    Guid GymId { get; }
}

/// <summary>Reading the caller's gym's rows (one by id, or a page), shared by the owner endpoints so that each answers alike.</summary>
public static class GymRows
{
    /// <summary>The row with this id if it belongs to this gym, else null: another gym's row is as unknown as an id that does not exist.</summary>
    public static Task<T?> FindInGymAsync<T>(this IQueryable<T> rows, Guid id, Guid gymId, CancellationToken ct) where T : class, IGymRow =>
        rows.FirstOrDefaultAsync(r => r.Id == id && r.GymId == gymId, ct);

    /// <summary>A GET by id: 200 with the row as <paramref name="toDto"/> makes it, or 404 with <paramref name="notFound"/>.</summary>
    public static async Task<Results<Ok<TDto>, NotFound<ErrorResponse>>> GetInGymAsync<T, TDto>(
        this IQueryable<T> rows, Guid id, Guid gymId, Func<T, TDto> toDto, string notFound, CancellationToken ct) where T : class, IGymRow
    {
        var item = await rows.AsNoTracking().FindInGymAsync(id, gymId, ct);
        return item is null ? ApiErrors.NotFound(notFound) : TypedResults.Ok(toDto(item));
    }

    /// <summary>
    /// A list endpoint with <c>?limit=&amp;offset=</c>: 400 for a bad limit or offset (or a value <paramref name="filter"/>
    /// does not know), else one page of this gym's rows (those the filter matches, when it has a value), newest first,
    /// made DTOs by <paramref name="toDto"/> in the query (so only those columns are read).
    /// </summary>
    public static async Task<Results<Ok<TList>, BadRequest<ErrorResponse>>> ListInGymAsync<T, TTime, TDto, TList>(
        this IQueryable<T> rows, Guid gymId, int? limit, int? offset, Expression<Func<T, TTime>> newest,
        Expression<Func<T, TDto>> toDto, Func<List<TDto>, TList> toList, CancellationToken ct, ListFilter<T>? filter = null)
        where T : class, IGymRow
    {
        if (Paging.TryCreate(limit, offset, out var page) is { } error)
        {
            return ApiErrors.BadRequest(error);
        }
        var query = rows.AsNoTracking().Where(r => r.GymId == gymId);
        if (filter?.Value is { } value)
        {
            if (!filter.Known.Contains(value))
            {
                return ApiErrors.BadRequest($"Unknown {filter.Name} '{value}'. Valid {filter.PluralName}: {string.Join(", ", filter.Known)}");
            }
            query = query.Where(filter.Matches);
        }
        var items = await page.NewestFirst(query, newest).Select(toDto).ToListAsync(ct);
        return TypedResults.Ok(toList(items));
    }
}

/// <summary>
/// A list's optional <c>?name=value</c> filter (such as <c>?status=failed</c>): <paramref name="Value"/> must be one of
/// <paramref name="Known"/>, and <paramref name="Matches"/> keeps the rows with that value.
/// </summary>
public sealed record ListFilter<T>(string Name, string PluralName, string? Value, IReadOnlyCollection<string> Known,
    Expression<Func<T, bool>> Matches);

/// <summary>
/// The read side of an owner collection whose list is one page of the gym's rows, newest first, and whose get is one
/// row by id: <see cref="List"/> and <see cref="Get"/> are its two GET handlers, so a feature states only its rows, its
/// DTO and its not-found message. The handlers are named <c>List</c> and <c>Get</c> because the OpenAPI operation
/// ids and summaries are made from a handler's name.
/// </summary>
public sealed class GymCollection<T, TDto, TList>(
    Expression<Func<T, DateTime>> newest, Expression<Func<T, TDto>> toDto, Func<List<TDto>, TList> toList, string notFound)
    where T : class, IGymRow
{
    /// <summary>The DTO of a row already loaded (the query's projection, compiled once).</summary>
    public Func<T, TDto> Map { get; } = toDto.Compile();

    internal Task<Results<Ok<TList>, BadRequest<ErrorResponse>>> List(
        ClaimsPrincipal user, GymwireDbContext db, int? limit, int? offset, CancellationToken ct) =>
        db.Set<T>().ListInGymAsync(user.GetGymId(), limit, offset, newest, toDto, toList, ct);

    internal Task<Results<Ok<TDto>, NotFound<ErrorResponse>>> Get(Guid id, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct) =>
        db.Set<T>().GetInGymAsync(id, user.GetGymId(), Map, notFound, ct);
}
