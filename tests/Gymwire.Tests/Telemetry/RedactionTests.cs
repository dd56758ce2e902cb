using System.Diagnostics;
using Gymwire.Infrastructure.Telemetry;

namespace Gymwire.Tests.Telemetry;

public sealed class RedactionTests
{
    [Fact]
    public void Outgoing_spans_keep_the_origin_and_the_delivery_id_but_never_the_path_query_or_credentials()
    {
        using var activity = new Activity("POST");
        activity.SetTag("url.full", "https://user:pass@hooks.example.com/catch/123/s3cret?token=abc");
        using var request = new HttpRequestMessage(HttpMethod.Post, "https://user:pass@hooks.example.com:8443/catch/123/s3cret?token=abc");
        request.Headers.TryAddWithoutValidation("webhook-id", "0193a5d2-delivery");

        TelemetrySetup.RedactUrl(activity, request);

        Assert.Equal("https://hooks.example.com:8443/", activity.GetTagItem("url.full"));
        Assert.Equal("0193a5d2-delivery", activity.GetTagItem("gymwire.webhook.delivery_id"));
        Assert.DoesNotContain(activity.TagObjects, t => t.Value is string s && (s.Contains("s3cret", StringComparison.Ordinal) || s.Contains("token", StringComparison.Ordinal) || s.Contains("pass", StringComparison.Ordinal)));
    }
}
