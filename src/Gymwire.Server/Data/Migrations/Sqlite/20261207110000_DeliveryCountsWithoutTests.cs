using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Sqlite
{
    /// <summary>
    /// The delivery counts leave test sends out (<see cref="DeliveryCountTriggers.SqliteWithoutTests"/>): a test is the
    /// receiver's answer to a sample, not the webhook's health. No model change, hence no designer file.
    /// </summary>
    [DbContext(typeof(SqliteGymwireDbContext))]
    [Migration("20261207110000_DeliveryCountsWithoutTests")]
    public partial class DeliveryCountsWithoutTests : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder) =>
            migrationBuilder.Sql(DeliveryCountTriggers.SqliteWithoutTests);

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder) =>
            migrationBuilder.Sql(DeliveryCountTriggers.SqliteWithoutTestsDown);
    }
}
