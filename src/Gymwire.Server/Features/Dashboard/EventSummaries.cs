namespace Gymwire.Features.Dashboard;

/// <summary>
/// One line per event for the activity pages: who (the member's name where the gym knows the user id), how much, what.
/// </summary>
public static class EventSummaries
{
    /// <summary>The names of the members whose user ids appear in the events' data, by user id.</summary>
    public static async Task<Dictionary<string, string>> MemberNamesAsync(GymwireDbContext db, Guid gymId, IEnumerable<string?> dataJson, CancellationToken ct)
    {
        var ids = dataJson.Select(UserId).OfType<string>().Distinct(StringComparer.Ordinal).ToList();
        if (ids.Count == 0)
        {
            return [];
        }
        return await db.Members.AsNoTracking().Where(m => m.GymId == gymId && ids.Contains(m.UserId))
            .ToDictionaryAsync(m => m.UserId, m => m.Name, StringComparer.Ordinal, ct);
    }

    public static string? UserId(string? dataJson)
    {
        if (string.IsNullOrEmpty(dataJson))
        {
            return null;
        }
        try
        {
            using var doc = JsonDocument.Parse(dataJson);
            return Data(doc.RootElement) is { ValueKind: JsonValueKind.Object } data && data.TryGetProperty("user_id", out var id) && id.ValueKind == JsonValueKind.String
                ? id.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>"Dana Reyes · 99.00 USD", "John Doe (lead from zapier)"; an event's whole payload is accepted too (its <c>data</c> is used).</summary>
    public static string Summarize(string? dataJson, IReadOnlyDictionary<string, string> names)
    {
        if (string.IsNullOrEmpty(dataJson))
        {
            return "";
        }
        try
        {
            using var doc = JsonDocument.Parse(dataJson);
            if (Data(doc.RootElement) is not { ValueKind: JsonValueKind.Object } data)
            {
                return "";
            }
            var parts = new List<string>();
            if (Text(data, "user_id") is { } userId)
            {
                parts.Add(names.TryGetValue(userId, out var name) ? name : userId);
            }
            else if (Text(data, "first_name") is { } first)
            {
                parts.Add($"{first} {Text(data, "last_name")}".Trim() + (Text(data, "source") is { } source ? $" (lead from {source})" : ""));
            }
            if (data.TryGetProperty("amount_cents", out var cents) && cents.TryGetInt64(out var amount))
            {
                var currency = Text(data, "currency")?.ToUpperInvariant() ?? "";
                parts.Add((amount / 100m).ToString("#,0.00", CultureInfo.InvariantCulture) + (currency.Length > 0 ? " " + currency : ""));
            }
            foreach (var key in new[] { "title", "session_type", "failure_reason", "status" })
            {
                if (Text(data, key) is { } value)
                {
                    parts.Add(value);
                }
            }
            return string.Join(" · ", parts);
        }
        catch (JsonException)
        {
            return "";
        }
    }

    private static JsonElement? Data(JsonElement root) =>
        root.ValueKind == JsonValueKind.Object && root.TryGetProperty("data", out var inner) && root.TryGetProperty("event", out _) ? inner
        : root.ValueKind == JsonValueKind.Object ? root : null;

    private static string? Text(JsonElement data, string key) =>
        data.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s ? s : null;
}
