using System.Reflection;

namespace Gymwire.Tests.Operations;

/// <summary>
/// Operators alert and filter on a log line's <c>EventId</c> (docs/operations.md, Logs), so no two of the server's
/// [LoggerMessage] lines may share one: a renumbered or copied line would page someone for the wrong event.
/// </summary>
public sealed class LogEventIdTests
{
    [Fact]
    public void Every_logger_message_of_the_server_has_an_event_id_of_its_own()
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly;
        var messages = typeof(Gymwire.Infrastructure.ErrorHandling).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(all))
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(m => m.Attribute is not null)
            .Select(m => (Id: m.Attribute!.EventId, Name: $"{m.Method.DeclaringType!.FullName}.{m.Method.Name}"))
            .ToList();

        // The reflection must see the lines at all (the attribute is kept in the assembly), or the test proves nothing.
        Assert.True(messages.Count > 80, $"found only {messages.Count} [LoggerMessage] methods");
        Assert.All(messages, m => Assert.True(m.Id > 0, $"{m.Name} has no EventId"));
        var shared = messages.GroupBy(m => m.Id).Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(m => m.Name))}").ToList();
        Assert.True(shared.Count == 0, "EventIds used more than once:\n" + string.Join('\n', shared));
    }
}
