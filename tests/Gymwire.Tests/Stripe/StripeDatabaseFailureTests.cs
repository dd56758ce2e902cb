using Gymwire.Infrastructure;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Gymwire.Tests.Stripe;

/// <summary>
/// A verified Stripe event whose save fails is kept as ignored only when the database refused its values, which it
/// would on every retry; any other failure is answered with an error so that Stripe sends the event again, since an
/// event answered 200 is never sent again and an ignored one cannot be processed again.
/// </summary>
public sealed class StripeDatabaseFailureTests
{
    [Theory]
    [InlineData("22001", true)] // string_data_right_truncation: a value longer than its column
    [InlineData("22003", true)] // numeric_value_out_of_range
    [InlineData("23502", true)] // not_null_violation
    [InlineData("57P01", false)] // admin_shutdown: the connection went away
    [InlineData("57014", false)] // query_canceled: statement_timeout
    [InlineData("55P03", false)] // lock_not_available: lock_timeout
    [InlineData("53100", false)] // disk_full
    [InlineData("25006", false)] // read_only_sql_transaction: a standby during failover
    [InlineData("08006", false)] // connection_failure
    public void PostgreSQL_failures_count_as_refused_values_only_for_data_and_constraint_errors(string sqlState, bool refused)
    {
        var failure = new DbUpdateException("save failed", new PostgresException("failed", "ERROR", "ERROR", sqlState));
        Assert.Equal(refused, ErrorHandling.IsDataRefused(failure));
    }

    [Theory]
    [InlineData(19, 1299, true)] // SQLITE_CONSTRAINT_NOTNULL
    [InlineData(18, 18, true)] // SQLITE_TOOBIG
    [InlineData(5, 5, false)] // SQLITE_BUSY: another process holds the write lock
    [InlineData(13, 13, false)] // SQLITE_FULL
    [InlineData(10, 10, false)] // SQLITE_IOERR
    [InlineData(8, 8, false)] // SQLITE_READONLY
    public void SQLite_failures_count_as_refused_values_only_for_constraints_and_sizes(int code, int extended, bool refused)
    {
        var failure = new DbUpdateException("save failed", new SqliteException("failed", code, extended));
        Assert.Equal(refused, ErrorHandling.IsDataRefused(failure));
    }
}
