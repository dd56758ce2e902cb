namespace Gymwire.BrowserTests;

/// <summary>A page checked with axe-core (<see cref="Axe"/>) in light and dark, with a full-page screenshot of each.</summary>
public static class Accessibility
{
    /// <summary>axe in both schemes, and screenshots name-light.png and name-dark.png.</summary>
    public static async Task CheckAsync(DashboardPage browser, string name)
    {
        await Axe.AssertNoSeriousViolationsAsync(browser.Page);
        foreach (var scheme in new[] { Microsoft.Playwright.ColorScheme.Light, Microsoft.Playwright.ColorScheme.Dark })
        {
            await browser.Page.EmulateMediaAsync(new() { ColorScheme = scheme });
            await browser.ScreenshotAsync($"{name}-{(scheme == Microsoft.Playwright.ColorScheme.Light ? "light" : "dark")}");
        }
        await browser.Page.EmulateMediaAsync(new() { ColorScheme = Microsoft.Playwright.ColorScheme.Light });
    }
}
