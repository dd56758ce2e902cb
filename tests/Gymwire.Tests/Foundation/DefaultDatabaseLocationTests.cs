using System.Diagnostics;

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
            start.ArgumentList.Add("serve");
            start.ArgumentList.Add("--urls=http://127.0.0.1:0");
            // Nothing inherited from the test run may choose the database or the log levels.
            foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("ConnectionStrings__", StringComparison.OrdinalIgnoreCase)
                || k.StartsWith("Database__", StringComparison.OrdinalIgnoreCase) || k.StartsWith("Logging__", StringComparison.OrdinalIgnoreCase)).ToList())
            {
                start.Environment.Remove(key);
            }
            var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
            var started = new TaskCompletionSource();
            using var process = Process.Start(start)!;
            void OnLine(object _, DataReceivedEventArgs e)
            {
                if (e.Data is null)
                {
                    return;
                }
                output.Enqueue(e.Data);
                if (e.Data.Contains("Application started", StringComparison.Ordinal))
                {
                    started.TrySetResult();
                }
            }
            process.OutputDataReceived += OnLine;
            process.ErrorDataReceived += OnLine;
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                await started.Task.WaitAsync(TimeSpan.FromSeconds(120));
            }
            finally
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }

            Assert.True(File.Exists(Path.Combine(cwd.FullName, "gymwire.db")), "gymwire.db is not in the current directory");
            Assert.False(File.Exists(Path.Combine(AppContext.BaseDirectory, "gymwire.db")), "gymwire.db was created beside the executable");
            // appsettings.json (beside gymwire.dll, not in the current directory) sets EF Core's logging to Warning:
            // were it not read, starting would log every migration command at Information.
            Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "appsettings.json")));
            Assert.False(File.Exists(Path.Combine(cwd.FullName, "appsettings.json")));
            var log = string.Join("\n", output);
            Assert.Contains("Now listening on", log, StringComparison.Ordinal);
            Assert.DoesNotContain("Executed DbCommand", log, StringComparison.Ordinal);
        }
        finally
        {
            cwd.Delete(recursive: true);
        }
    }
}
