using System.Linq.Expressions;
using Gymwire.Data;
using Gymwire.Features.Events;
using Gymwire.Infrastructure;

namespace Gymwire.Features.Leads;

/// <summary>Creating leads: used by the API, the Zapier <c>create_lead</c> action and the demo.</summary>
public static class LeadService
{
    public static string? Validate(CreateLeadRequest request)
    {
        request = WithoutBlanks(request);
        return new RequestValidator()
            .Required(request.FirstName, "first_name")
            .MaxLength(request.LastName, "last_name", 200)
            .MaxLength(request.Email, "email", 320).Email(request.Email, "email")
            .PhoneAsWritten(request.Phone, "phone")
            .MaxLength(request.Source, "source", 100)
            .Error;
    }

    /// <summary>Adds a (validated) lead and its <c>lead.created</c> event to the unit of work.</summary>
    public static Lead AddLead(GymwireDbContext db, Guid gymId, CreateLeadRequest request, string defaultSource, DateTime now)
    {
        request = WithoutBlanks(request);
        var lead = new Lead
        {
            Id = Guid.CreateVersion7(now), GymId = gymId, FirstName = request.FirstName!.Trim(), LastName = request.LastName,
            Email = request.Email, Phone = request.Phone, Source = request.Source ?? defaultSource, CreatedAt = now,
        };
        db.Leads.Add(lead);
        db.AddEvent(gymId, EventCatalog.LeadCreated,
            new { lead_id = lead.Id, first_name = lead.FirstName, last_name = lead.LastName, source = lead.Source }, now);
        return lead;
    }

    // Form tools and Zapier's field mappers send "" for a field left empty; the contract's optional fields (and
    // source's default) treat it as not given.
    private static CreateLeadRequest WithoutBlanks(CreateLeadRequest r) =>
        r with { LastName = Trimmed(r.LastName), Email = Trimmed(r.Email), Phone = Trimmed(r.Phone), Source = Trimmed(r.Source) };

    private static string? Trimmed(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    public static readonly Expression<Func<Lead, LeadDto>> ToDto =
        l => new LeadDto(l.Id, l.FirstName, l.LastName, l.Email, l.Phone, l.Source, l.CreatedAt);

    // The same mapping in memory, for rows already loaded.
    public static readonly Func<Lead, LeadDto> Map = ToDto.Compile();
}
