using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class SmsProviderMessageIdUnique : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Before the look-up for an earlier attempt left out SIDs other messages carry, two messages could be
            // recorded with one Twilio message. The oldest keeps it (it was sent first, so the message is most likely
            // its); the others lose it, so the unique index can be built, and say why their delivery stays unknown.
            // Ranked in one sort: with no index on the column yet, a correlated look-up per row would scan the table for each.
            migrationBuilder.Sql("""
                UPDATE sms_messages
                SET provider_message_id = NULL,
                    error = 'Recorded with the provider message id of an earlier message, which keeps it; this message''s delivery status is unknown.'
                WHERE id IN (
                    SELECT id FROM (
                        SELECT id, ROW_NUMBER() OVER (PARTITION BY provider_message_id ORDER BY created_at, id) AS n
                        FROM sms_messages WHERE provider_message_id IS NOT NULL) AS ranked
                    WHERE n > 1);
                """);

            migrationBuilder.CreateIndex(
                name: "ix_sms_messages_provider_message_id",
                table: "sms_messages",
                column: "provider_message_id",
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_sms_messages_provider_message_id",
                table: "sms_messages");
        }
    }
}
