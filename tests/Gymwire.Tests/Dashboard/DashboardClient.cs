using System.Net;
using System.Text.RegularExpressions;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Dashboard;

/// <summary>A browser without a browser: keeps cookies, never follows redirects, posts forms with their antiforgery token.</summary>
public sealed partial class DashboardClient : IDisposable
{
    private readonly GymwireFixture _fx;
    private readonly HttpClient _http;

    public DashboardClient(GymwireFixture fx)
    {
        _fx = fx;
        Cookies = new CookieContainer();
        _http = new HttpClient(new HttpClientHandler { CookieContainer = Cookies, AllowAutoRedirect = false, UseCookies = true });
    }

    public CookieContainer Cookies { get; }

    /// <summary>From now on, sends the Accept header a browser sends with a page load or a form post.</summary>
    public void AcceptHtml() => _http.DefaultRequestHeaders.Accept.ParseAdd("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");

    public Task<HttpResponseMessage> GetAsync(string path) => _http.GetAsync(new Uri(_fx.BaseAddress, path));

    public async Task<string> GetPageAsync(string path)
    {
        var response = await GetAsync(path);
        var html = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {path}: {(int)response.StatusCode} {response.Headers.Location} {html}");
        return html;
    }

    /// <summary>Loads the form's page for its antiforgery token (and cookie), then posts the fields with it.</summary>
    public async Task<HttpResponseMessage> SubmitAsync(string path, params (string Name, string Value)[] fields) =>
        await PostFormAsync(path, [.. fields, ("__RequestVerificationToken", Token(await GetPageAsync(path)))]);

    /// <summary>The page a form's POST redirected to (post/redirect/get), as the browser would load it.</summary>
    public async Task<HttpResponseMessage> FollowAsync(HttpResponseMessage response)
    {
        Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"expected a redirect: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return await GetAsync(response.Headers.Location!.OriginalString);
    }

    public Task<HttpResponseMessage> SendAsync(HttpRequestMessage request) => _http.SendAsync(request);

    public Task<HttpResponseMessage> PostFormAsync(string path, params (string Name, string Value)[] fields) =>
        _http.PostAsync(new Uri(_fx.BaseAddress, path), new FormUrlEncodedContent(fields.Select(f => KeyValuePair.Create(f.Name, f.Value))));

    public async Task LoginAsync(string email, string password)
    {
        var response = await SubmitAsync("/login", ("Input.Email", email), ("Input.Password", password));
        Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"login: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    public static string Token(string html) =>
        TokenPattern().Match(html) is { Success: true } m ? WebUtility.HtmlDecode(m.Groups[1].Value) : throw new InvalidOperationException("no antiforgery token in the page");

    public void Dispose() => _http.Dispose();

    [GeneratedRegex("name=\"__RequestVerificationToken\" type=\"hidden\" value=\"([^\"]+)\"")]
    private static partial Regex TokenPattern();
}
