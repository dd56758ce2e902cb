using System.Text.Json;
using Gymwire.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

/// <summary>
/// Runs axe-core (npm, tools/axe) inside the page, in light and in dark colour scheme, and fails on any serious or
/// critical violation. The script is evaluated through the DevTools protocol, which the page's CSP does not govern.
/// </summary>
public static class Axe
{
    private static readonly Lazy<string> Source = new(() =>
    {
        var path = Path.Combine(ExternalTool.RepositoryRoot, "tools", "axe", "node_modules", "axe-core", "axe.min.js");
        return File.Exists(path) ? File.ReadAllText(path) : throw new InvalidOperationException("tools/axe has no node_modules: scripts/test runs `npm ci` there first");
    });

    public static async Task AssertNoSeriousViolationsAsync(IPage page)
    {
        foreach (var scheme in new[] { ColorScheme.Light, ColorScheme.Dark })
        {
            await page.EmulateMediaAsync(new() { ColorScheme = scheme });
            await page.EvaluateAsync(Source.Value);
            var violations = await page.EvaluateAsync<JsonElement>(
                """
                async () => (await axe.run(document, { resultTypes: ['violations'] })).violations
                    .filter(v => v.impact === 'serious' || v.impact === 'critical')
                    .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', '))
                """);
            var found = violations.EnumerateArray().Select(v => v.GetString()).ToList();
            Assert.True(found.Count == 0, $"axe-core on {page.Url} ({scheme}):\n" + string.Join("\n", found));
        }
        await page.EmulateMediaAsync(new() { ColorScheme = ColorScheme.Light });
    }
}
