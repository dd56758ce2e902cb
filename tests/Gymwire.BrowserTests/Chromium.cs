using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

/// <summary>
/// One headless Chromium for the whole run: Debian's system Chromium (scripts/test installs it), driven by
/// Playwright. Playwright never downloads a browser here; the machine has no route to one.
/// </summary>
public sealed class Chromium : IAsyncLifetime
{
    public const string ExecutablePath = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public IBrowser Browser { get; private set; } = null!;

    /// <summary>Where every test writes its screenshots, for a reviewer to look at.</summary>
    public static string ScreenshotDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "TestResults", "screenshots");

    public async Task InitializeAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new InvalidOperationException($"{ExecutablePath} is missing: run scripts/test, which installs Debian's chromium package.");
        }
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        Directory.CreateDirectory(ScreenshotDirectory);
        // Expect's assertions wait as long as DashboardPage lets a navigation take, not Playwright's 5 s (less than an
        // action's 10 s there): what they wait for often comes with a page after a click, and on two busy cores a
        // login's redirect once took over 10 s.
        Assertions.SetDefaultExpectTimeout(DashboardPage.NavigationTimeout);
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            Args =
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.CloseAsync();
        }
        _playwright?.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class BrowserCollection : ICollectionFixture<Chromium>
{
    // Browser tests share one Chromium and run one at a time: the machine has two cores.
    public const string Name = "browser";
}
