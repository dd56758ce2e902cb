using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Gymwire.Infrastructure.OpenApi;

/// <summary>
/// Describes <c>limit</c>, <c>offset</c> and <c>after_sequence</c> wherever an endpoint takes them through
/// <see cref="Paging"/>: their bounds, and what offset paging does when rows change between pages.
/// </summary>
internal static class PagingOpenApi
{
    public static Task DescribePaging(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        // The Zapier triggers have bounds of their own, described with the triggers.
        if (context.Description.RelativePath == "api/zapier/triggers")
        {
            return Task.CompletedTask;
        }
        var parameters = operation.Parameters?.OfType<OpenApiParameter>().Where(p => p.In == ParameterLocation.Query).ToDictionary(p => p.Name ?? "") ?? [];
        if (parameters.TryGetValue("limit", out var limit))
        {
            limit.Description ??= $"Optional, 1 to {Paging.MaxLimit} (default {Paging.DefaultLimit}): how many rows.";
        }
        if (parameters.TryGetValue("offset", out var offset))
        {
            offset.Description ??= "Optional, 0 or more (default 0): how many rows to skip. Pages are newest first, by time and then id. " +
                "A row added or removed while you page moves the rows after it, so a later page can repeat or miss one: " +
                "to read everything once, use the event feed (`GET /api/gym/events?after_sequence=`).";
        }
        if (parameters.TryGetValue("after_sequence", out var after))
        {
            after.Description ??= "Optional, 0 or more (default 0): the events after this position of the gym's event log, oldest first. " +
                "Send the last `sequence` you processed.";
        }
        return Task.CompletedTask;
    }
}
