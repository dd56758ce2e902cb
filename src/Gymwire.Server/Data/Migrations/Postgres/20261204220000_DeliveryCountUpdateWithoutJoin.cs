using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <summary>
    /// The delivery counts' update trigger counts a statement's old and new rows without joining them
    /// (<see cref="DeliveryCountTriggers.PostgresUpdateWithoutJoin"/>), so its time grows with the statement's rows, not
    /// their square. PostgreSQL only; no model change, hence no designer file.
    /// </summary>
    [DbContext(typeof(PostgresGymwireDbContext))]
    [Migration("20261204220000_DeliveryCountUpdateWithoutJoin")]
    public partial class DeliveryCountUpdateWithoutJoin : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder) =>
            migrationBuilder.Sql(DeliveryCountTriggers.PostgresUpdateWithoutJoin);

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder) =>
            migrationBuilder.Sql(DeliveryCountTriggers.PostgresUpdateWithoutJoinDown);
    }
}
