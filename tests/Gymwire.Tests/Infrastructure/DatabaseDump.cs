using System.Data.Common;
using System.Text;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Infrastructure;

/// <summary>Every value of every table as text (hex for blobs), to prove a secret is stored nowhere in plain text.</summary>
public static class DatabaseDump
{
    public static async Task<string> AllTextAsync(GymwireFixture fx) => await fx.WithDbAsync(async db =>
    {
        var text = new StringBuilder();
        var connection = db.Database.GetDbConnection();
        await db.Database.OpenConnectionAsync();
        try
        {
            var tables = new List<string>();
            await using (var list = connection.CreateCommand())
            {
                list.CommandText = fx.Store == Store.Sqlite
                    ? "SELECT name FROM sqlite_master WHERE type = 'table'"
                    : "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'";
                await using var reader = await list.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    tables.Add(reader.GetString(0));
                }
            }
            foreach (var table in tables)
            {
                await using var select = connection.CreateCommand();
                select.CommandText = $"SELECT * FROM \"{table}\"";
                await using var reader = await select.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    for (var i = 0; i < reader.FieldCount; i++)
                    {
                        text.Append(Format(reader, i)).Append('\t');
                    }
                    text.Append('\n');
                }
            }
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }
        return text.ToString();
    });

    private static string Format(DbDataReader reader, int i)
    {
        if (reader.IsDBNull(i))
        {
            return "";
        }
        var value = reader.GetValue(i);
        return value is byte[] bytes ? Convert.ToHexStringLower(bytes) + " " + Encoding.UTF8.GetString(bytes) : Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "";
    }
}
