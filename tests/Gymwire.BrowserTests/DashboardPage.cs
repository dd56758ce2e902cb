using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Gymwire.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Gymwire.BrowserTests;

/// <summary>
/// A fresh browser context (its own cookies) on a Gymwire. It records every request the page makes and every
/// console error, so a test can assert that nothing left loopback and that no CSP violation happened.
/// </summary>
public sealed class DashboardPage : IAsyncDisposable
{
    private readonly IBrowserContext _context;
    public const int NavigationTimeout = 30_000;
    private readonly ConcurrentQueue<string> _problems = new();
    private readonly string _origin;

    private DashboardPage(IBrowserContext context, IPage page, GymwireFixture fx)
    {
        _context = context;
        Page = page;
        _origin = fx.BaseAddress.GetLeftPart(UriPartial.Authority);
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                _problems.Enqueue($"console error: {message.Text}");
            }
        };
        page.PageError += (_, error) => _problems.Enqueue($"page error: {error}");
        page.Request += (_, request) =>
        {
            if (!request.Url.StartsWith(_origin, StringComparison.Ordinal) && !request.Url.StartsWith("data:", StringComparison.Ordinal))
            {
                _problems.Enqueue($"request left the server: {request.Url}");
            }
        };
    }

    public IPage Page { get; }

    /// <param name="clipboard">Let the page write and the test read the clipboard (the copy buttons).</param>
    public static async Task<DashboardPage> OpenAsync(Chromium chromium, GymwireFixture fx, int width = 1280, int height = 800, bool clipboard = false)
    {
        var context = await chromium.Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = fx.BaseAddress.ToString().TrimEnd('/'),
            ViewportSize = new ViewportSize { Width = width, Height = height },
            Locale = "en-US",
            Permissions = clipboard ? ["clipboard-read", "clipboard-write"] : [],
        });
        context.SetDefaultTimeout(10_000);
        // Navigations (a login's redirect, a form's POST and the page after it) get longer: scripts/test runs this
        // project beside Gymwire.Tests, and on two busy cores a login's redirect once took over 10 s.
        context.SetDefaultNavigationTimeout(NavigationTimeout);
        return new DashboardPage(context, await context.NewPageAsync(), fx);
    }

    public async Task ScreenshotAsync(string name) =>
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Chromium.ScreenshotDirectory, name + ".png"), FullPage = true });

    public async Task LoginAsync(string email, string password)
    {
        await Page.GotoAsync("/login");
        await Page.GetByLabel("Email").FillAsync(email);
        await Page.GetByLabel("Password").FillAsync(password);
        await Page.GetByRole(AriaRole.Button, new() { Name = "Log in" }).ClickAsync();
        await ExpectPathAsync("/settings/integrations");
    }

    /// <summary>
    /// Waits until the page's URL is this path (and query) on the server. It waits for the URL only, not for the page's
    /// load event: the locators a test uses next wait for their elements. (<c>WaitForURLAsync</c> also waits for the
    /// load event, and once, beside the full test run on two busy cores, saw only "networkidle" for 30 s and failed.)
    /// </summary>
    public Task ExpectPathAsync(string pathAndQuery) =>
        ExpectUrlAsync(new Regex("^" + Regex.Escape(_origin + pathAndQuery) + "$"));

    /// <summary>Waits until the page's URL matches, as <see cref="ExpectPathAsync"/> does.</summary>
    public Task ExpectUrlAsync(Regex url) =>
        Assertions.Expect(Page).ToHaveURLAsync(url, new() { Timeout = NavigationTimeout });

    public string CurrentPath => new Uri(Page.Url).PathAndQuery;

    /// <summary>Fails if the page made a request off the server, or logged a console error (a CSP violation, say).</summary>
    public void AssertClean() => Assert.True(_problems.IsEmpty, string.Join("\n", _problems));

    public async ValueTask DisposeAsync() => await _context.CloseAsync();
}
