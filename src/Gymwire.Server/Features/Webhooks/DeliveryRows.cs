using System.Text;
using Gymwire.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Inserts new deliveries inside the caller's transaction without tracking them as entities: a burst fans out into
/// thousands of rows, and tracking each costs more than sending it. Values are bound through EF Core's own type
/// mappings (the model's columns), so every column is stored exactly as <c>SaveChanges</c> would store it.
/// PostgreSQL gets multi-row <c>INSERT … VALUES</c> statements (one round trip per 100 rows); SQLite, in process,
/// gets one prepared single-row statement executed per row, its fastest bulk path (it binds parameters by name,
/// so a statement of hundreds of parameters costs more than it saves).
/// </summary>
internal static class DeliveryRows
{
    private const int RowsPerStatement = 100;

    private static readonly (string Property, Func<WebhookDelivery, object?> Value)[] Columns =
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
    ];

    public static async Task InsertAsync(GymwireDbContext db, IReadOnlyList<WebhookDelivery> rows, CancellationToken ct)
    {
        if (rows.Count == 0)
        {
            return;
        }
        var transaction = db.Database.CurrentTransaction?.GetDbTransaction()
            ?? throw new InvalidOperationException("Deliveries are inserted inside the caller's transaction.");
        // Table, column names and type mappings come from the model, so they follow its configuration.
        var entity = db.Model.FindEntityType(typeof(WebhookDelivery))!;
        var columns = Columns.Select(c => entity.FindProperty(c.Property)!).Select(p => (Name: p.GetColumnName(), Mapping: p.GetRelationalTypeMapping())).ToArray();
        var insert = $"INSERT INTO {entity.GetTableName()} ({string.Join(", ", columns.Select(c => c.Name))}) VALUES ";
        var perStatement = db.Provider == DatabaseProvider.Postgres ? RowsPerStatement : 1;
        await using var command = transaction.Connection!.CreateCommand();
        command.Transaction = transaction;
        for (var start = 0; start < rows.Count; start += perStatement)
        {
            var count = Math.Min(perStatement, rows.Count - start);
            if (command.Parameters.Count != count * columns.Length)
            {
                // (Re)shaped only when the row count changes: SQLite's single-row statement is prepared once.
                command.Parameters.Clear();
                var sql = new StringBuilder(insert);
                for (var r = 0; r < count; r++)
                {
                    sql.Append(r == 0 ? "(" : ", (");
                    for (var c = 0; c < columns.Length; c++)
                    {
                        var name = $"p{r}_{c}";
                        // Both providers take '@name' placeholders (Npgsql rewrites them to positional parameters).
                        sql.Append(c == 0 ? "@" : ", @").Append(name);
                        command.Parameters.Add(columns[c].Mapping.CreateParameter(command, name, Columns[c].Value(rows[start + r]), nullable: true));
                    }
                    sql.Append(')');
                }
                command.CommandText = sql.ToString();
                await command.PrepareAsync(ct);
            }
            else
            {
                for (var r = 0; r < count; r++)
                {
                    for (var c = 0; c < columns.Length; c++)
                    {
                        var value = Columns[c].Value(rows[start + r]);
                        var converter = columns[c].Mapping.Converter;
                        command.Parameters[r * columns.Length + c].Value = (converter is null ? value : converter.ConvertToProvider(value)) ?? DBNull.Value;
                    }
                }
            }
            await command.ExecuteNonQueryAsync(ct);
        }
    }
}
