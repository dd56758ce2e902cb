using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <summary>
    /// The delivery counts' row triggers become statement triggers (<see cref="DeliveryCountTriggers.PostgresByStatement"/>),
    /// so a statement over many deliveries of one webhook no longer takes time in the square of its rows. PostgreSQL
    /// only (SQLite updates a row in place); no model change, hence no designer file.
    /// </summary>
    [DbContext(typeof(PostgresGymwireDbContext))]
    [Migration("20261204160000_DeliveryCountStatementTriggers")]
    public partial class DeliveryCountStatementTriggers : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder) =>
            migrationBuilder.Sql(DeliveryCountTriggers.PostgresByStatement);

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder) =>
            migrationBuilder.Sql(DeliveryCountTriggers.PostgresByStatementDown);
    }
}
