using System.Net;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Dashboard;

/// <summary>
/// Signs in to the dashboard as if through a TLS-terminating proxy (X-Forwarded-Proto), carrying cookies by hand, since a
/// cookie container would not send a Secure cookie back over plain HTTP. Returns every Set-Cookie the server sent.
/// </summary>
public static class ForwardedLogin
{
    public static async Task<List<string>> SignInAsync(GymwireFixture fx, TestGym gym, string forwardedProto)
    {
        using var http = new HttpClient(new HttpClientHandler { UseCookies = false, AllowAutoRedirect = false }) { BaseAddress = fx.BaseAddress };
        http.DefaultRequestHeaders.Add("X-Forwarded-Proto", forwardedProto);
        var page = await http.GetAsync("/login");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var cookies = page.Headers.GetValues("Set-Cookie").ToList();
        using var post = new HttpRequestMessage(HttpMethod.Post, "/login")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["Input.Email"] = gym.OwnerEmail,
                ["Input.Password"] = gym.OwnerPassword,
                ["__RequestVerificationToken"] = DashboardClient.Token(await page.Content.ReadAsStringAsync()),
            }),
        };
        post.Headers.Add("Cookie", string.Join("; ", cookies.Select(c => c.Split(';')[0])));
        var response = await http.SendAsync(post);
        Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"login: {(int)response.StatusCode}");
        cookies.AddRange(response.Headers.GetValues("Set-Cookie"));
        return cookies;
    }
}
