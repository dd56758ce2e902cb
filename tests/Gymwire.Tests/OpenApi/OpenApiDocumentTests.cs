using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gymwire.Tests.Infrastructure;
using Microsoft.AspNetCore.Routing;

namespace Gymwire.Tests.OpenApi;

/// <summary>
/// The served OpenAPI document is generated from the code; the committed copy (docs/openapi.json) must match
/// it, so API changes show in review. Regenerate with: GYMWIRE_UPDATE_OPENAPI=1 scripts/test --filter OpenApi.
/// <c>/openapi.json</c> is OpenAPI 3.0 (the contract's promise, docs/design.md); <c>/openapi/v1-3.1.json</c> is the same API in 3.1.
/// </summary>
public sealed class OpenApiDocumentTests(SqliteGymwire fx) : IClassFixture<SqliteGymwire>
{
    private static string CommittedPath
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Gymwire.slnx")))
            {
                dir = dir.Parent;
            }
            return Path.Combine(dir?.FullName ?? throw new InvalidOperationException("repository root not found"), "docs", "openapi.json");
        }
    }

    private async Task<JsonNode> ServedAsync(string url = "/openapi.json")
    {
        var response = await fx.Client().GetAsync(url);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
    }

    [Fact]
    public async Task The_served_document_matches_the_committed_copy()
    {
        var served = (await ServedAsync()).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
        if (Environment.GetEnvironmentVariable("GYMWIRE_UPDATE_OPENAPI") == "1")
        {
            await File.WriteAllTextAsync(CommittedPath, served);
        }
        var committed = File.Exists(CommittedPath) ? await File.ReadAllTextAsync(CommittedPath) : "";
        Assert.True(committed == served,
            "docs/openapi.json differs from the served /openapi.json. Review the API change, then regenerate with: GYMWIRE_UPDATE_OPENAPI=1 scripts/test --filter FullyQualifiedName~OpenApiDocumentTests");
    }

    [Fact]
    public async Task Every_api_route_the_app_serves_is_described_and_nothing_else()
    {
        var document = await ServedAsync();
        var described = document["paths"]!.AsObject()
            .SelectMany(p => p.Value!.AsObject().Select(m => $"{m.Key.ToUpperInvariant()} {p.Key}"))
            .ToHashSet();
        var served = fx.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText!.StartsWith("/api", StringComparison.Ordinal))
            .SelectMany(e => (e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? []).Select(m => $"{m} {Normalize(e.RoutePattern.RawText!)}"))
            .ToHashSet();
        Assert.NotEmpty(served);
        Assert.Empty(served.Except(described));
        Assert.Empty(described.Except(served));
    }

    [Fact]
    public async Task Every_paging_parameter_states_its_bounds_and_offsets_say_what_changes_between_pages_do()
    {
        var document = await ServedAsync();
        var parameters = document["paths"]!.AsObject()
            .SelectMany(p => p.Value!.AsObject().SelectMany(m => (m.Value!["parameters"]?.AsArray() ?? []).Select(q => (Operation: $"{m.Key} {p.Key}", Parameter: q!))))
            .Where(x => x.Parameter["name"]!.GetValue<string>() is "limit" or "offset" or "after_sequence")
            .ToList();
        Assert.Contains(parameters, x => x.Parameter["name"]!.GetValue<string>() == "offset");
        Assert.All(parameters, x =>
        {
            var description = x.Parameter["description"]?.GetValue<string>() ?? "";
            Assert.True(description.StartsWith("Optional, ", StringComparison.Ordinal), $"{x.Operation} {x.Parameter["name"]}: '{description}'");
            if (x.Parameter["name"]!.GetValue<string>() == "offset")
            {
                Assert.Contains("repeat or miss", description, StringComparison.Ordinal);
            }
        });
    }

    [Fact]
    public async Task The_document_describes_security_errors_zapier_types_and_every_webhook_event()
    {
        var document = await ServedAsync();
        Assert.StartsWith("3.0", document["openapi"]!.GetValue<string>(), StringComparison.Ordinal);
        var schemes = document["components"]!["securitySchemes"]!.AsObject();
        Assert.True(schemes.ContainsKey("apiKey") && schemes.ContainsKey("ownerSession"));
        Assert.Equal("error", document["components"]!["schemas"]!["ErrorResponse"]!["required"]![0]!.GetValue<string>());

        var trigger = document["paths"]!["/api/zapier/triggers"]!["get"]!;
        var typeParam = trigger["parameters"]!.AsArray().First(p => p!["name"]!.GetValue<string>() == "type")!;
        Assert.Equal(["new_member", "new_payment", "new_session", "new_checkin"], typeParam["schema"]!["enum"]!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.Equal("apiKey", trigger["security"]!.AsArray().SelectMany(r => r!.AsObject().Select(kv => kv.Key)).Last());
        foreach (var status in new[] { "401", "403", "429", "500" })
        {
            Assert.Contains("ErrorResponse", trigger["responses"]![status]!.ToJsonString(), StringComparison.Ordinal);
        }
        var memberProps = trigger["responses"]!["200"]!["content"]!["application/json"]!["schema"]!["items"]!["anyOf"]![0]!["properties"]!.AsObject().Select(p => p.Key);
        Assert.Equal(["id", "user_id", "role", "joined_at"], memberProps);

        var keys = document["paths"]!["/api/gym/api-keys"]!["get"]!["security"]!.AsArray();
        Assert.Equal("ownerSession", Assert.Single(keys)!.AsObject().Single().Key);

        // OpenAPI 3.0 has no `webhooks`: the catalog is under `x-webhooks` (Redoc's convention).
        var webhooks = document["x-webhooks"]!.AsObject().Select(w => w.Key).ToList();
        Assert.Equal(Gymwire.Features.Events.EventCatalog.All.Select(e => e.Name), webhooks);
    }

    [Fact]
    public async Task The_same_api_is_served_as_openapi_3_1_at_its_own_path_and_the_old_3_0_path_still_answers()
    {
        var v30 = await ServedAsync();
        var v31 = await ServedAsync("/openapi/v1-3.1.json");
        Assert.StartsWith("3.1", v31["openapi"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(v30["paths"]!.AsObject().Select(p => p.Key), v31["paths"]!.AsObject().Select(p => p.Key));
        Assert.Equal(Gymwire.Features.Events.EventCatalog.All.Select(e => e.Name), v31["webhooks"]!.AsObject().Select(w => w.Key));
        Assert.Null(v31["x-webhooks"]);
        foreach (var alias in new[] { "/openapi/v1.json", "/openapi/v1-3.0.json" })
        {
            Assert.True(JsonNode.DeepEquals(v30, await ServedAsync(alias)), alias);
        }
    }

    /// <summary>
    /// A schema without a <c>type</c> becomes "any" (<c>UntypedNode</c>, <c>unknown</c>) in generated clients; 3.0's
    /// <c>nullable</c> also needs a <c>type</c> beside it. Only references and compositions may go without one.
    /// </summary>
    [Theory]
    [InlineData("/openapi.json")]
    [InlineData("/openapi/v1-3.1.json")]
    public async Task Every_schema_has_a_type(string url)
    {
        var document = await ServedAsync(url);
        var untyped = new List<string>();
        void Schema(JsonNode? node, string path)
        {
            if (node is not JsonObject schema)
            {
                return;
            }
            if (!schema.ContainsKey("type") && !schema.ContainsKey("$ref") && !schema.ContainsKey("oneOf") && !schema.ContainsKey("anyOf") && !schema.ContainsKey("allOf"))
            {
                untyped.Add($"{path}: {schema.ToJsonString()}");
            }
            foreach (var (name, property) in schema["properties"]?.AsObject() ?? [])
            {
                Schema(property, $"{path}/properties/{name}");
            }
            foreach (var key in new[] { "items", "additionalProperties", "not" })
            {
                Schema(schema[key], $"{path}/{key}");
            }
            foreach (var key in new[] { "oneOf", "anyOf", "allOf" })
            {
                var i = 0;
                foreach (var member in schema[key]?.AsArray() ?? [])
                {
                    Schema(member, $"{path}/{key}/{i++}");
                }
            }
        }
        // Every `schema` (parameters, headers, bodies, responses, webhooks) and every component schema.
        void Find(JsonNode? node, string path)
        {
            if (node is JsonObject obj)
            {
                foreach (var (key, value) in obj)
                {
                    if (key == "schema")
                    {
                        Schema(value, $"{path}/schema");
                    }
                    else if (key != "components")
                    {
                        Find(value, $"{path}/{key}");
                    }
                }
            }
            else if (node is JsonArray array)
            {
                var i = 0;
                foreach (var item in array)
                {
                    Find(item, $"{path}/{i++}");
                }
            }
        }
        Find(document, "#");
        foreach (var (name, schema) in document["components"]!["schemas"]!.AsObject())
        {
            Schema(schema, $"#/components/schemas/{name}");
        }
        Assert.True(untyped.Count == 0, $"{untyped.Count} schemas without a type:\n" + string.Join("\n", untyped.Take(20)));
    }

    [Fact]
    public async Task Every_timestamp_is_a_typed_date_time_string_nullable_where_it_may_be_absent()
    {
        var document = await ServedAsync();
        var schemas = document["components"]!["schemas"]!;
        Assert.Equal("string", schemas["CreateApiKeyRequest"]!["properties"]!["expires_at"]!["type"]!.GetValue<string>());
        Assert.True(schemas["CreateApiKeyRequest"]!["properties"]!["expires_at"]!["nullable"]!.GetValue<bool>());
        var trigger = document["paths"]!["/api/zapier/triggers"]!["get"]!["responses"]!["200"]!["content"]!["application/json"]!["schema"]!;
        var joined = trigger["items"]!["anyOf"]![0]!["properties"]!["joined_at"]!;
        Assert.Equal("string", joined["type"]!.GetValue<string>());
        Assert.Equal("date-time", joined["format"]!.GetValue<string>());
        Assert.Null(joined["nullable"]);
    }

    [Fact]
    public async Task The_api_reference_page_is_served_locally_without_a_cdn()
    {
        using var client = fx.Client();
        var page = await client.GetAsync("/docs/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("\"url\":\"openapi/v1-3.1.json\"", html, StringComparison.Ordinal);
        var source = await (await client.GetAsync("/docs/openapi/v1-3.1.json")).JsonAsync();
        Assert.StartsWith("3.1", source.GetProperty("openapi").GetString(), StringComparison.Ordinal);
        var scripts = System.Text.RegularExpressions.Regex.Matches(html, "src=\"([^\"]+)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.NotEmpty(scripts);
        Assert.All(scripts, s => Assert.False(s.StartsWith("http", StringComparison.Ordinal), s));
        foreach (var script in scripts)
        {
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(new Uri(new Uri(fx.BaseAddress, "/docs/"), script))).StatusCode);
        }
    }

    [Theory]
    [InlineData("/docs/")]
    [InlineData("/openapi.json")]
    [InlineData("/openapi/v1-3.1.json")]
    [InlineData("/docs/openapi/v1-3.1.json")]
    public async Task The_api_reference_and_its_documents_cannot_be_framed_or_sniffed(string path)
    {
        using var client = fx.Client();
        using var response = await client.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("frame-ancestors 'none'", string.Join(",", response.Headers.GetValues("Content-Security-Policy")));
        Assert.Equal("DENY", string.Join(",", response.Headers.GetValues("X-Frame-Options")));
        Assert.Equal("nosniff", string.Join(",", response.Headers.GetValues("X-Content-Type-Options")));
        Assert.Equal("same-origin", string.Join(",", response.Headers.GetValues("Referrer-Policy")));
    }

    private static string Normalize(string pattern) =>
        System.Text.RegularExpressions.Regex.Replace(pattern, "{([^}:]+)(:[^}]+)?}", "{$1}").TrimEnd('/') is { Length: > 0 } p ? p : "/";
}
