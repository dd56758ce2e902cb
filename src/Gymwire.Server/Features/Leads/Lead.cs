using Gymwire.Infrastructure;

namespace Gymwire.Features.Leads;

/// <summary>A prospective member in the gym's CRM.</summary>
public sealed class Lead : IGymRow
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public required string FirstName { get; set; }
    public string? LastName { get; set; }
    public string? Email { get; set; }
    public string? Phone { get; set; }
    public required string Source { get; set; }
    public DateTime CreatedAt { get; set; }
}
