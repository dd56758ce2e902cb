using System.Text;
using Gymwire.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Inserts new deliveries as multi-row <c>INSERT … VALUES</c> statements inside the caller's transaction: a burst
/// fans out into thousands of rows, and tracking each as an entity costs more than sending it. Values are bound
/// through EF Core's own type mappings, so every column is stored exactly as <c>SaveChanges</c> would store it.
/// </summary>
internal static class DeliveryRows
{
    private const int RowsPerStatement = 10;

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
        if (db.Database.CurrentTransaction is null)
        {
            throw new InvalidOperationException("Deliveries are inserted inside the caller's transaction.");
        }
        // Only a factory for parameters; the statements go through EF (its transaction, interceptors and logging).
        await using var factory = db.Database.GetDbConnection().CreateCommand();
        // Table, column names and type mappings come from the model, so they follow its configuration.
        var entity = db.Model.FindEntityType(typeof(WebhookDelivery))!;
        var columns = Columns.Select(c => entity.FindProperty(c.Property)!).Select(p => (Name: p.GetColumnName(), Mapping: p.GetRelationalTypeMapping())).ToArray();
        var insert = $"INSERT INTO {entity.GetTableName()} ({string.Join(", ", columns.Select(c => c.Name))}) VALUES ";
        for (var start = 0; start < rows.Count; start += RowsPerStatement)
        {
            var count = Math.Min(RowsPerStatement, rows.Count - start);
            var parameters = new List<object>(count * columns.Length);
            var sql = new StringBuilder(insert);
            for (var r = 0; r < count; r++)
            {
                sql.Append(r == 0 ? "(" : ", (");
                for (var c = 0; c < columns.Length; c++)
                {
                    var name = $"p{r}_{c}";
                    var value = Columns[c].Value(rows[start + r]);
                    // Both providers take '@name' placeholders (Npgsql rewrites them to positional parameters).
                    sql.Append(c == 0 ? "@" : ", @").Append(name);
                    parameters.Add(columns[c].Mapping.CreateParameter(factory, name, value, nullable: value is null));
                }
                sql.Append(')');
            }
            await db.Database.ExecuteSqlRawAsync(sql.ToString(), parameters, ct);
        }
    }
}
