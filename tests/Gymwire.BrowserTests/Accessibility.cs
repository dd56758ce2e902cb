using Deque.AxeCore.Playwright;
using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

/// <summary>axe-core (the Deque.AxeCore.Playwright package embeds it; nothing is fetched) run in the page, light and dark.</summary>
public static class Accessibility
{
    /// <summary>Fails on any serious or critical axe-core violation, in the light and in the dark colour scheme; screenshots both.</summary>
    public static async Task AssertAccessibleAsync(this DashboardPage browser, string screenshot)
    {
        var page = browser.Page;
        await page.WaitForLoadStateAsync(LoadState.Load);
        foreach (var scheme in new[] { ColorScheme.Light, ColorScheme.Dark })
        {
            await page.EmulateMediaAsync(new() { ColorScheme = scheme });
            var results = await page.RunAxe();
            var bad = results.Violations.Where(v => v.Impact is "serious" or "critical").ToList();
            Assert.True(bad.Count == 0, $"{page.Url} ({scheme}): " + string.Join("\n", bad.Select(v =>
                $"{v.Impact} {v.Id}: {v.Help} at {string.Join(", ", v.Nodes.Select(n => n.Html))}")));
            await browser.ScreenshotAsync(screenshot + (scheme == ColorScheme.Dark ? "-dark" : ""));
        }
        await page.EmulateMediaAsync(new() { ColorScheme = ColorScheme.Light });
    }
}
