using System.Diagnostics;
using System.Text.Json;

namespace Gymwire.Tests.Foundation;

/// <summary>
/// With no connection string, the SQLite file is <c>gymwire.db</c> in the directory the server is started from (the
/// README's rule, for <c>dotnet run</c> and a published build alike), while <c>appsettings.json</c> is still read from
/// beside the executable. SQLite only: PostgreSQL has no default database.
/// </summary>
public sealed class DefaultDatabaseLocationTests
{
    [Fact]
    public async Task Gymwire_db_is_created_in_the_current_directory_and_appsettings_is_read_beside_the_executable()
    {
        var cwd = Directory.CreateTempSubdirectory("gymwire-cwd-");
        try
        {
            var start = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = cwd.FullName,
            };
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "gymwire.dll"));
            start.ArgumentList.Add("migrate");
            // Nothing inherited from the test run may choose the database or the log levels.
            foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("ConnectionStrings__", StringComparison.OrdinalIgnoreCase)
                || k.StartsWith("Database__", StringComparison.OrdinalIgnoreCase) || k.StartsWith("Logging__", StringComparison.OrdinalIgnoreCase)).ToList())
            {
                start.Environment.Remove(key);
            }
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await process.WaitForExitAsync(timeout.Token);
            Assert.True(process.ExitCode == 0, await stderr);
            Assert.True(JsonDocument.Parse(await stdout).RootElement.GetProperty("migrated").GetBoolean());

            Assert.True(File.Exists(Path.Combine(cwd.FullName, "gymwire.db")), "gymwire.db is not in the current directory");
            Assert.False(File.Exists(Path.Combine(AppContext.BaseDirectory, "gymwire.db")), "gymwire.db was created beside the executable");
            // appsettings.json (beside gymwire.dll) sets EF Core's logging to Warning: without it every migration command is logged.
            Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "appsettings.json")));
            Assert.DoesNotContain("Executed DbCommand", await stdout + await stderr, StringComparison.Ordinal);
        }
        finally
        {
            cwd.Delete(recursive: true);
        }
    }
}
