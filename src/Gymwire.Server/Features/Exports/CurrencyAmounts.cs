using System.Collections.Frozen;

namespace Gymwire.Features.Exports;

/// <summary>
/// Payments store amounts in the currency's smallest unit, as Stripe counts them (amount_cents): hundredths for most
/// currencies, the unit itself for zero-decimal ones (1000 JPY is ¥1000, not ¥10.00), thousandths for three-decimal
/// ones. The lists are Stripe's, so an amount reads as the payment provider charged it.
/// </summary>
public static class CurrencyAmounts
{
    private static readonly FrozenSet<string> ZeroDecimal = new[]
    {
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    private static readonly FrozenSet<string> ThreeDecimal = new[] { "bhd", "jod", "kwd", "omr", "tnd" }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    public static int Decimals(string currency) => ZeroDecimal.Contains(currency) ? 0 : ThreeDecimal.Contains(currency) ? 3 : 2;

    /// <summary>The amount in the currency's main unit.</summary>
    public static decimal Value(long minorUnits, string currency) => Decimals(currency) switch
    {
        0 => minorUnits,
        3 => minorUnits / 1000m,
        _ => minorUnits / 100m,
    };

    /// <summary>A number format with the currency's decimals: "0", "0.00" or "0.000".</summary>
    public static string Pattern(string currency) => Decimals(currency) switch
    {
        0 => "0",
        3 => "0.000",
        _ => "0.00",
    };

    public static string Format(long minorUnits, string currency) => Value(minorUnits, currency).ToString(Pattern(currency), CultureInfo.InvariantCulture);
}
