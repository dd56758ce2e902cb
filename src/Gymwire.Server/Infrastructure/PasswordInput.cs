using System.Text;

namespace Gymwire.Infrastructure;

/// <summary>
/// A password for an admin command read from standard input instead of the command line, where every local user sees
/// it in <c>ps</c> and the shell keeps it in its history: one line when input is redirected (a pipe, a file, a secret
/// store's output), or typed twice without echo at a prompt on a terminal.
/// </summary>
public static class PasswordInput
{
    /// <summary>
    /// The password a command was given: <paramref name="given"/> from <paramref name="option"/> on the command line,
    /// or from standard input with <c>OPTION-stdin</c> (<paramref name="fromStdin"/>). With neither, a
    /// <paramref name="required"/> password is asked for at a terminal, and is an error when input is redirected (input
    /// meant for something else is not taken as a password); an optional one is null. Returns an error message for the
    /// command's <c>error:</c> line instead when there is no usable password.
    /// </summary>
    public static (string? Password, string? Error) From(string? given, bool fromStdin, string option, bool required)
    {
        if (given is not null && fromStdin)
        {
            return (null, $"give {option} or {option}-stdin, not both");
        }
        if (given is not null)
        {
            return (given, null);
        }
        if (fromStdin || (required && !Console.IsInputRedirected))
        {
            return Read();
        }
        return (null, required ? $"a password is required: {option}-stdin reads it from standard input" : null);
    }

    /// <summary>One line of redirected input, or a password typed twice at the terminal.</summary>
    private static (string? Password, string? Error) Read()
    {
        if (Console.IsInputRedirected)
        {
            var line = Console.In.ReadLine();
            return string.IsNullOrEmpty(line) ? (null, "no password on standard input (one line was expected)") : (line, null);
        }
        var first = Prompt("Password: ");
        if (first.Length == 0)
        {
            return (null, "no password given");
        }
        var second = Prompt("Password again: ");
        return first == second ? (first, null) : (null, "the two passwords differ; nothing was changed");
    }

    /// <summary>
    /// Reads a line from the terminal without showing it. The prompt goes to standard error: standard output carries
    /// the command's JSON.
    /// </summary>
    private static string Prompt(string prompt)
    {
        Console.Error.Write(prompt);
        var typed = new StringBuilder();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.Enter)
            {
                break;
            }
            if (key.Key == ConsoleKey.Backspace)
            {
                if (typed.Length > 0)
                {
                    typed.Length--;
                }
            }
            else if (!char.IsControl(key.KeyChar))
            {
                typed.Append(key.KeyChar);
            }
        }
        Console.Error.WriteLine();
        return typed.ToString();
    }
}
