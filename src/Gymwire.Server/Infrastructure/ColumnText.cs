using System.Diagnostics.CodeAnalysis;

namespace Gymwire.Infrastructure;

public static class ColumnText
{
    /// <summary>
    /// <paramref name="value"/> cut to <paramref name="max"/> characters, to fit its column (PostgreSQL refuses a longer
    /// value). A character of two UTF-16 units that the cut would split is left out whole.
    /// </summary>
    [return: NotNullIfNotNull(nameof(value))]
    public static string? Fit(string? value, int max) =>
        value is null || value.Length <= max ? value : value[..(char.IsHighSurrogate(value[max - 1]) ? max - 1 : max)];
}
