using System.Buffers;

namespace Gymwire.Infrastructure;

/// <summary>
/// The characters no request text may contain: the C0 control characters except tab, line feed and carriage return.
/// U+0000 cannot be stored in a PostgreSQL text column at all (SQLite would keep it, so the two stores would
/// disagree); the other C0 controls have no use in any field (XML 1.0 refuses the same set), so one rule covers
/// every string. Tab, CR and LF are ordinary in free text. Checked in one place per way text comes in:
/// JSON bodies (<see cref="JsonBodyGuard"/>), and query strings and form fields (<see cref="RequestGuard"/>).
/// </summary>
public static class RequestText
{
    private static readonly SearchValues<char> Forbidden = SearchValues.Create(
        "\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u000B\u000C\u000E\u000F" +
        "\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001A\u001B\u001C\u001D\u001E\u001F");

    /// <summary>The first forbidden character of <paramref name="text"/>, or null when there is none.</summary>
    public static char? FirstForbidden(ReadOnlySpan<char> text) => text.IndexOfAny(Forbidden) is >= 0 and var i ? text[i] : null;

    /// <summary>How a message names the character: <c>U+0000</c>.</summary>
    public static string Name(char c) => $"U+{(int)c:X4}";
}
