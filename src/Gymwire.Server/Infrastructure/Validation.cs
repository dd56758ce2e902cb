using System.Net.Mail;
using PhoneNumbers;

namespace Gymwire.Infrastructure;

/// <summary>
/// Collects the first problem with a request, worded for the client and naming the field.
/// Handlers check, then return <c>ApiErrors.BadRequest(v.Error)</c>; nothing is written before that.
/// </summary>
public sealed class RequestValidator
{
    private static readonly PhoneNumberUtil Phones = PhoneNumberUtil.GetInstance();

    public string? Error { get; private set; }

    public bool IsValid => Error is null;

    public RequestValidator Fail(string message)
    {
        Error ??= message;
        return this;
    }

    public RequestValidator Check(bool condition, string message) => condition ? this : Fail(message);

    public RequestValidator Required(string? value, string field, int maxLength = 200)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return Fail($"'{field}' is required");
        }
        return MaxLength(value, field, maxLength);
    }

    public RequestValidator MaxLength(string? value, string field, int maxLength) =>
        value is not null && value.Length > maxLength ? Fail($"'{field}' must be at most {maxLength} characters") : this;

    public RequestValidator Email(string? value, string field)
    {
        if (value is null)
        {
            return this;
        }
        return IsEmail(value) ? this : Fail($"'{field}' must be a valid email address");
    }

    /// <summary>An address Gymwire will send mail to (an owner's): <see cref="IsMailbox"/>.</summary>
    public RequestValidator Mailbox(string? value, string field)
    {
        if (value is null)
        {
            return this;
        }
        return IsMailbox(value) ? this : Fail($"'{field}' must be a valid email address that mail can be sent to");
    }

    /// <summary>E.164: a plus sign, the country code and the number, e.g. +15551234567.</summary>
    public RequestValidator Phone(string? value, string field)
    {
        if (value is null)
        {
            return this;
        }
        return IsE164(value) ? this : Fail($"'{field}' must be a valid phone number in E.164 format (e.g. +15551234567)");
    }

    /// <summary>
    /// A phone number as people write it: an optional leading plus sign, 7 to 15 digits, and spaces, dashes, dots or
    /// parentheses between them, e.g. (555) 123-4567. For contact details kept as given; numbers Gymwire sends to are E.164.
    /// </summary>
    public RequestValidator PhoneAsWritten(string? value, string field)
    {
        if (value is null)
        {
            return this;
        }
        return IsPhoneAsWritten(value) ? this
            : Fail($"'{field}' must be a phone number: 7 to 15 digits, optionally with a leading + and spaces, dashes, dots or parentheses (e.g. +15551234567 or (555) 123-4567), at most 32 characters");
    }

    public RequestValidator OneOf(string? value, string field, IReadOnlyCollection<string> allowed)
    {
        if (value is null || allowed.Contains(value))
        {
            return this;
        }
        return Fail($"'{field}' must be one of: {string.Join(", ", allowed)}");
    }

    public RequestValidator Range(int? value, string field, int min, int max)
    {
        if (value is null || (value >= min && value <= max))
        {
            return this;
        }
        return Fail($"'{field}' must be between {min} and {max}");
    }

    public static bool IsEmail(string value) =>
        value.Length <= 320
        && MailAddress.TryCreate(value, out var address)
        && address.Address == value
        && address.Host.Contains('.', StringComparison.Ordinal);

    /// <summary>
    /// <see cref="IsEmail"/>, and one MimeKit (which sends Gymwire's mail) parses into exactly that mailbox: .NET accepts
    /// some addresses MimeKit refuses (<c>john.@example.com</c>), and an address Gymwire mails must never fail to parse.
    /// </summary>
    public static bool IsMailbox(string value) =>
        IsEmail(value) && MimeKit.MailboxAddress.TryParse(value, out var mailbox) && mailbox.Address == value;

    public static bool IsPhoneAsWritten(string value)
    {
        if (value.Length > 32)
        {
            return false;
        }
        var digits = 0;
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (char.IsAsciiDigit(c))
            {
                digits++;
            }
            else if (!(c is ' ' or '-' or '.' or '(' or ')' || (c == '+' && i == 0)))
            {
                return false;
            }
        }
        return digits is >= 7 and <= 15;
    }

    public static bool IsE164(string value)
    {
        if (value.Length is < 8 or > 16 || value[0] != '+' || !value.AsSpan(1).ContainsOnlyDigits())
        {
            return false;
        }
        try
        {
            var number = Phones.Parse(value, null);
            // "Possible" (right length for the country) rather than "valid" (an allocated range): the contract's own
            // example, +15551234567, is a fictional 555 number that a client must be able to send.
            return Phones.IsPossibleNumber(number) && Phones.Format(number, PhoneNumberFormat.E164) == value;
        }
        catch (NumberParseException)
        {
            return false;
        }
    }
}

internal static class SpanExtensions
{
    public static bool ContainsOnlyDigits(this ReadOnlySpan<char> span)
    {
        foreach (var c in span)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
        }
        return true;
    }
}
