using System.Text.RegularExpressions;
using Gymwire.Features.ApiKeys;

namespace Gymwire.Tests.ApiKeys;

public sealed partial class ApiKeyFormatTests
{
    [GeneratedRegex("^cs_[0-9a-f]{64}$")]
    private static partial Regex Documented();

    [Fact]
    public void Generated_keys_have_the_documented_format_and_a_valid_checksum()
    {
        var keys = Enumerable.Range(0, 200).Select(_ => ApiKeyFormat.Generate()).ToList();
        Assert.All(keys, k => Assert.Matches(Documented(), k));
        Assert.All(keys, k => Assert.True(ApiKeyFormat.IsWellFormed(k)));
        Assert.Equal(keys.Count, keys.Distinct().Count());
        Assert.All(keys, k => Assert.Equal(ApiKeyFormat.Checksum(k[3..59]), k[59..]));
    }

    [Fact]
    public void The_checksum_is_crc32_of_the_first_56_hex_digits()
    {
        // CRC-32 (IEEE) of the ASCII string "123456789" is the standard check value cbf43926.
        Assert.Equal("cbf43926", ApiKeyFormat.Checksum("123456789"));
    }

    [Fact]
    public void Any_single_changed_digit_breaks_the_checksum()
    {
        var key = ApiKeyFormat.Generate();
        for (var i = 3; i < key.Length; i++)
        {
            var changed = key[..i] + (key[i] == 'a' ? 'b' : 'a') + key[(i + 1)..];
            Assert.False(ApiKeyFormat.IsWellFormed(changed), $"position {i}");
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("cs_")]
    [InlineData("cs_abc")]
    [InlineData("sk_0000000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("cs_000000000000000000000000000000000000000000000000000000000000000G")]
    public void Malformed_keys_are_not_well_formed(string key) => Assert.False(ApiKeyFormat.IsWellFormed(key));

    [Fact]
    public void Uppercase_hex_is_not_the_documented_format()
    {
        var key = ApiKeyFormat.Generate();
        Assert.False(ApiKeyFormat.IsWellFormed("cs_" + key[3..].ToUpperInvariant()));
    }
}
