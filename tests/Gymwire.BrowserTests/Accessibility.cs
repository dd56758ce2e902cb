using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

/// <summary>A page checked with axe-core (<see cref="Axe"/>) in light and dark, with a full-page screenshot of each.</summary>
public static class Accessibility
{
    /// <summary>axe in both schemes, and screenshots name-light.png and name-dark.png.</summary>
    public static Task CheckAsync(DashboardPage browser, string name) => CheckAsync(browser, name + "-light", name + "-dark");

    /// <summary>axe in both schemes, and screenshots name.png (light) and name-dark.png.</summary>
    public static Task AssertAccessibleAsync(this DashboardPage browser, string screenshot) =>
        CheckAsync(browser, screenshot, screenshot + "-dark");

    private static async Task CheckAsync(DashboardPage browser, string light, string dark)
    {
        await browser.Page.WaitForLoadStateAsync(LoadState.Load);
        await Axe.AssertNoSeriousViolationsAsync(browser.Page);
        foreach (var (scheme, name) in new[] { (ColorScheme.Light, light), (ColorScheme.Dark, dark) })
        {
            await browser.Page.EmulateMediaAsync(new() { ColorScheme = scheme });
            await browser.ScreenshotAsync(name);
        }
        await browser.Page.EmulateMediaAsync(new() { ColorScheme = ColorScheme.Light });
    }
}
