using System.Text;
using Gymwire.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage;

namespace Gymwire.Features.Webhooks;

/// <summary>A recorded attempt's effect on its delivery: the columns the attempt recorder writes.</summary>
public sealed record DeliveryOutcome(Guid Id, string Status, int AttemptCount, DateTime? LastAttemptAt, int? LastStatusCode, string? LastError, DateTime? NextAttemptAt);

/// <summary>
/// The delivery pipeline's bulk writes, inside the caller's transaction and without tracking entities: a burst fans
/// out into thousands of delivery rows, and every attempt adds a row and changes one, so tracking each costs more
/// than sending it. Values are bound through EF Core's own type mappings (the model's columns), so every column is
/// stored exactly as <c>SaveChanges</c> would store it. Each store's queue says how many rows a statement takes
/// (<see cref="DeliveryQueue.RowsPerStatement"/>); a statement is prepared once and executed again while its row
/// count stays the same.
/// </summary>
internal static class DeliveryRows
{
    private static readonly (string Property, Func<WebhookDelivery, object?> Value)[] DeliveryColumns =
    [
        (nameof(WebhookDelivery.Id), d => d.Id),
        (nameof(WebhookDelivery.GymId), d => d.GymId),
        (nameof(WebhookDelivery.SubscriptionId), d => d.SubscriptionId),
        (nameof(WebhookDelivery.EventId), d => d.EventId),
        (nameof(WebhookDelivery.Event), d => d.Event),
        (nameof(WebhookDelivery.Payload), d => d.Payload),
        (nameof(WebhookDelivery.IsTest), d => d.IsTest),
        (nameof(WebhookDelivery.Status), d => d.Status),
        (nameof(WebhookDelivery.AttemptCount), d => d.AttemptCount),
        (nameof(WebhookDelivery.CreatedAt), d => d.CreatedAt),
        (nameof(WebhookDelivery.NextAttemptAt), d => d.NextAttemptAt),
        (nameof(WebhookDelivery.LockedUntil), d => d.LockedUntil),
        (nameof(WebhookDelivery.ClaimedBy), d => d.ClaimedBy),
        (nameof(WebhookDelivery.DueBeforeClaim), d => d.DueBeforeClaim),
    ];

    private static readonly (string Property, Func<WebhookAttempt, object?> Value)[] AttemptColumns =
    [
        (nameof(WebhookAttempt.Id), a => a.Id),
        (nameof(WebhookAttempt.GymId), a => a.GymId),
        (nameof(WebhookAttempt.DeliveryId), a => a.DeliveryId),
        (nameof(WebhookAttempt.Number), a => a.Number),
        (nameof(WebhookAttempt.AttemptedAt), a => a.AttemptedAt),
        (nameof(WebhookAttempt.StatusCode), a => a.StatusCode),
        (nameof(WebhookAttempt.DurationMs), a => a.DurationMs),
        (nameof(WebhookAttempt.Error), a => a.Error),
        (nameof(WebhookAttempt.ResponseHeaders), a => a.ResponseHeaders),
        (nameof(WebhookAttempt.ResponseBody), a => a.ResponseBody),
        (nameof(WebhookAttempt.ResponseBodyTruncated), a => a.ResponseBodyTruncated),
        (nameof(WebhookAttempt.Trigger), a => a.Trigger),
    ];

    // The key first: an update sets every other column by it. The claim is let go with the outcome.
    private static readonly (string Property, Func<DeliveryOutcome, object?> Value)[] OutcomeColumns =
    [
        (nameof(WebhookDelivery.Id), o => o.Id),
        (nameof(WebhookDelivery.Status), o => o.Status),
        (nameof(WebhookDelivery.AttemptCount), o => o.AttemptCount),
        (nameof(WebhookDelivery.LastAttemptAt), o => o.LastAttemptAt),
        (nameof(WebhookDelivery.LastStatusCode), o => o.LastStatusCode),
        (nameof(WebhookDelivery.LastError), o => o.LastError),
        (nameof(WebhookDelivery.NextAttemptAt), o => o.NextAttemptAt),
        (nameof(WebhookDelivery.LockedUntil), _ => null),
        (nameof(WebhookDelivery.ClaimedBy), _ => null),
    ];

    /// <summary>Inserts new deliveries.</summary>
    public static Task InsertAsync(GymwireDbContext db, int rowsPerStatement, IReadOnlyList<WebhookDelivery> rows, CancellationToken ct) =>
        WriteAsync(db, rowsPerStatement, typeof(WebhookDelivery), rows, DeliveryColumns, Insert, ct);

    private static readonly int AttemptDeliveryColumn = Array.FindIndex(AttemptColumns, c => c.Property == nameof(WebhookAttempt.DeliveryId));

    /// <summary>
    /// Inserts attempt rows, leaving out those whose delivery no longer exists: one deleted while its attempt was in
    /// flight (its webhook deleted, or retention) would otherwise fail the foreign key, and with it every record of the
    /// batch. A delivery whose outcome the caller's transaction has just updated is locked by it, so it cannot go
    /// between the check and the insert.
    /// </summary>
    public static Task InsertAttemptsAsync(GymwireDbContext db, int rowsPerStatement, IReadOnlyList<WebhookAttempt> rows, CancellationToken ct)
    {
        var deliveries = db.Model.FindEntityType(typeof(WebhookDelivery))!;
        var (table, key) = (deliveries.GetTableName()!, deliveries.FindProperty(nameof(WebhookDelivery.Id))!.GetColumnName());
        return WriteAsync(db, rowsPerStatement, typeof(WebhookAttempt), rows, AttemptColumns,
            (attempts, columns, count) => InsertIfDeliveryExists(attempts, columns, count, table, key), ct);
    }

    /// <summary>Writes each delivery's outcome (its state after an attempt) by id, and lets its claim go.</summary>
    public static Task UpdateOutcomesAsync(GymwireDbContext db, int rowsPerStatement, IReadOnlyList<DeliveryOutcome> rows, CancellationToken ct) =>
        WriteAsync(db, rowsPerStatement, typeof(WebhookDelivery), rows, OutcomeColumns, UpdateByKey, ct);

    /// <summary>What a delivery records when its webhook is no longer active.</summary>
    public const string InactiveError = "The webhook is inactive";

    /// <summary>
    /// Ends the queued deliveries of deactivated subscriptions (undeliverable, unsent; the owner can redeliver them)
    /// in one statement, inside the caller's transaction. Deliveries in flight (claimed) are left to their attempt.
    /// One by one, each would cost a claim, a record and a write transaction, behind the endpoint's concurrency cap.
    /// </summary>
    public static Task<int> DropQueuedAsync(GymwireDbContext db, IReadOnlyCollection<Guid> subscriptionIds, DateTime now, CancellationToken ct) =>
        subscriptionIds.Count == 0 ? Task.FromResult(0) : db.WebhookDeliveries
            .Where(d => subscriptionIds.Contains(d.SubscriptionId) && (d.Status == DeliveryStatus.Pending || d.Status == DeliveryStatus.Retrying)
                && (d.LockedUntil == null || d.LockedUntil <= now))
            .ExecuteUpdateAsync(u => u.SetProperty(d => d.Status, DeliveryStatus.Undeliverable).SetProperty(d => d.NextAttemptAt, (DateTime?)null)
                .SetProperty(d => d.LastError, InactiveError), ct);

    /// <summary><c>INSERT INTO t (a, b) VALUES (@p0_0, @p0_1), (@p1_0, @p1_1)</c>.</summary>
    private static string Insert(string table, string[] columns, int rows)
    {
        var sql = new StringBuilder($"INSERT INTO {table} ({string.Join(", ", columns)}) VALUES ");
        AppendValues(sql, columns.Length, rows);
        return sql.ToString();
    }

    /// <summary>
    /// One row: <c>INSERT INTO t (a, b) SELECT @p0_0, @p0_1 WHERE EXISTS (…)</c>; several:
    /// <c>INSERT INTO t (a, b) SELECT v.a, v.b FROM (VALUES (@p0_0, @p0_1), …) AS v (a, b) WHERE EXISTS (…)</c>.
    /// </summary>
    private static string InsertIfDeliveryExists(string table, string[] columns, int rows, string deliveries, string key)
    {
        var names = string.Join(", ", columns);
        if (rows == 1)
        {
            return $"INSERT INTO {table} ({names}) SELECT {string.Join(", ", columns.Select((_, c) => $"@p0_{c}"))} "
                + $"WHERE EXISTS (SELECT 1 FROM {deliveries} WHERE {key} = @p0_{AttemptDeliveryColumn})";
        }
        var sql = new StringBuilder($"INSERT INTO {table} ({names}) SELECT {string.Join(", ", columns.Select(c => $"v.{c}"))} FROM (VALUES ");
        AppendValues(sql, columns.Length, rows);
        return sql.Append($") AS v ({names}) WHERE EXISTS (SELECT 1 FROM {deliveries} AS d WHERE d.{key} = v.{columns[AttemptDeliveryColumn]})").ToString();
    }

    /// <summary>
    /// One row: <c>UPDATE t SET b = @p0_1 WHERE a = @p0_0</c>; several:
    /// <c>UPDATE t SET b = v.b FROM (VALUES (@p0_0, @p0_1), …) AS v (a, b) WHERE t.a = v.a</c>.
    /// </summary>
    private static string UpdateByKey(string table, string[] columns, int rows)
    {
        if (rows == 1)
        {
            return $"UPDATE {table} SET {string.Join(", ", columns.Skip(1).Select((c, i) => $"{c} = @p0_{i + 1}"))} WHERE {columns[0]} = @p0_0";
        }
        var sql = new StringBuilder($"UPDATE {table} AS t SET {string.Join(", ", columns.Skip(1).Select(c => $"{c} = v.{c}"))} FROM (VALUES ");
        AppendValues(sql, columns.Length, rows);
        return sql.Append($") AS v ({string.Join(", ", columns)}) WHERE t.{columns[0]} = v.{columns[0]}").ToString();
    }

    private static void AppendValues(StringBuilder sql, int columns, int rows)
    {
        for (var r = 0; r < rows; r++)
        {
            sql.Append(r == 0 ? "(" : ", (");
            for (var c = 0; c < columns; c++)
            {
                // Both stores' providers take '@name' placeholders.
                sql.Append(c == 0 ? "@" : ", @").Append($"p{r}_{c}");
            }
            sql.Append(')');
        }
    }

    private static async Task WriteAsync<TRow>(GymwireDbContext db, int perStatement, Type entityType, IReadOnlyList<TRow> rows, (string Property, Func<TRow, object?> Value)[] values,
        Func<string, string[], int, string> statement, CancellationToken ct)
    {
        if (rows.Count == 0)
        {
            return;
        }
        var transaction = db.Database.CurrentTransaction?.GetDbTransaction()
            ?? throw new InvalidOperationException("The delivery pipeline's rows are written inside the caller's transaction.");
        // Table, column names and type mappings come from the model, so they follow its configuration.
        var entity = db.Model.FindEntityType(entityType)!;
        var columns = values.Select(c => entity.FindProperty(c.Property)!).Select(p => (Name: p.GetColumnName(), Mapping: p.GetRelationalTypeMapping())).ToArray();
        var names = columns.Select(c => c.Name).ToArray();
        await using var command = transaction.Connection!.CreateCommand();
        command.Transaction = transaction;
        for (var start = 0; start < rows.Count; start += perStatement)
        {
            var count = Math.Min(perStatement, rows.Count - start);
            if (command.Parameters.Count != count * columns.Length)
            {
                // (Re)shaped only when the row count changes: a single-row statement is prepared once.
                command.Parameters.Clear();
                for (var r = 0; r < count; r++)
                {
                    for (var c = 0; c < columns.Length; c++)
                    {
                        // Named as in the SQL, "@" included, so that binding it needs no search of the statement's names.
                        command.Parameters.Add(columns[c].Mapping.CreateParameter(command, $"@p{r}_{c}", values[c].Value(rows[start + r]), nullable: true));
                    }
                }
                command.CommandText = statement(entity.GetTableName()!, names, count);
                await command.PrepareAsync(ct);
            }
            else
            {
                for (var r = 0; r < count; r++)
                {
                    for (var c = 0; c < columns.Length; c++)
                    {
                        var value = values[c].Value(rows[start + r]);
                        var converter = columns[c].Mapping.Converter;
                        command.Parameters[r * columns.Length + c].Value = (converter is null ? value : converter.ConvertToProvider(value)) ?? DBNull.Value;
                    }
                }
            }
            await command.ExecuteNonQueryAsync(ct);
        }
    }
}
