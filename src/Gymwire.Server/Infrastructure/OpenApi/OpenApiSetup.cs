using System.Text.Json.Nodes;
using Gymwire.Features.Webhooks;
using Gymwire.Features.Zapier;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.OpenApi;
using Scalar.AspNetCore;

namespace Gymwire.Infrastructure.OpenApi;

/// <summary>
/// The OpenAPI description, generated from the endpoints (never written by hand): <c>/openapi.json</c> is
/// OpenAPI 3.0 (what the wire contract promises, docs/design.md, and what every client generator reads; the webhook
/// catalog is under <c>x-webhooks</c>), <c>/openapi/v1-3.1.json</c> the same API as OpenAPI 3.1 (catalog under
/// <c>webhooks</c>), and <c>/docs</c> a readable reference of the 3.1 document (Scalar, served from the server: no CDN).
/// </summary>
public static class OpenApiSetup
{
    /// <summary>OpenAPI 3.0, the default document: <c>/openapi.json</c> and <c>/openapi/v1.json</c>.</summary>
    public const string DocumentName = "v1";
    /// <summary>The same 3.0 document under the name it had when 3.1 was the default (links to it keep working).</summary>
    public const string Legacy30DocumentName = "v1-3.0";
    /// <summary>OpenAPI 3.1: <c>/openapi/v1-3.1.json</c>.</summary>
    public const string Openapi31DocumentName = "v1-3.1";
    public const string ApiKeyScheme = "apiKey";
    public const string OwnerSessionScheme = "ownerSession";

    public static IServiceCollection AddGymwireOpenApi(this IServiceCollection services)
    {
        services.AddOpenApi(DocumentName, o => Configure(o, OpenApiSpecVersion.OpenApi3_0));
        services.AddOpenApi(Legacy30DocumentName, o => Configure(o, OpenApiSpecVersion.OpenApi3_0));
        services.AddOpenApi(Openapi31DocumentName, o => Configure(o, OpenApiSpecVersion.OpenApi3_1));
        return services;
    }

    private static void Configure(OpenApiOptions options, OpenApiSpecVersion version)
    {
        options.OpenApiVersion = version;
        options.AddSchemaTransformer(OpenApiSchemaTypes.TypeSchema);
        options.AddDocumentTransformer(DescribeDocument);
        options.AddOperationTransformer(NameOperation);
        options.AddOperationTransformer(OpenApiSchemaTypes.UnwrapOptionalBody);
        options.AddOperationTransformer(DescribeSecurityAndErrors);
        options.AddOperationTransformer(ZapierOpenApi.DescribeZapierOperation);
        options.AddOperationTransformer(PagingOpenApi.DescribePaging);
        options.AddDocumentTransformer((document, context, ct) => WebhookCatalogOpenApi.AddWebhooks(document, version));
    }

    public static IEndpointRouteBuilder MapGymwireOpenApi(this IEndpointRouteBuilder app)
    {
        // Without {documentName} in the route, MapOpenApi serves the default document ("v1", OpenAPI 3.0).
        app.MapOpenApi("/openapi.json").AllowAnonymous().WithDocumentHeaders();
        app.MapOpenApi("/openapi/{documentName}.json").AllowAnonymous().WithDocumentHeaders();
        // Scalar loads its document relative to its own page (docs/openapi/v1-3.1.json): the 3.1 one, which has `webhooks`.
        app.MapOpenApi("/docs/openapi/{documentName}.json").AllowAnonymous().WithDocumentHeaders();
        app.MapScalarApiReference("/docs", o =>
        {
            o.Title = "Gymwire API";
            o.OpenApiRoutePattern = "/openapi/{documentName}.json";
            o.AddDocument(Openapi31DocumentName, "Gymwire API");
        }).AllowAnonymous().WithDocumentHeaders();
        return app;
    }

    /// <summary>
    /// The API reference takes an API key and runs on the dashboard's origin: no other site may frame it, and neither it
    /// nor the documents are read as another content type. The page configures itself in an inline script, so no script policy.
    /// </summary>
    private static TBuilder WithDocumentHeaders<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilter((context, next) =>
        {
            var headers = context.HttpContext.Response.Headers;
            headers.ContentSecurityPolicy = "frame-ancestors 'none'";
            headers.XFrameOptions = "DENY";
            headers.XContentTypeOptions = "nosniff";
            headers["Referrer-Policy"] = "same-origin";
            return next(context);
        });

    private static Task DescribeDocument(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken ct)
    {
        document.Info = new OpenApiInfo
        {
            Title = "Gymwire API",
            Version = "2026-04-16",
            Description = "The CombatScore Developer API (version 2026-04-16) as served by Gymwire, with GymPoint's integration features. " +
                          "Authenticate with `Authorization: Bearer cs_…` (an API key with `read` and/or `write` scope) or an owner session token from `POST /api/auth/login`. " +
                          "Every error is `{\"error\": \"Human-readable error message\"}`.",
        };
        document.Info.License = new OpenApiLicense { Name = "MIT", Url = new Uri("https://opensource.org/license/mit") };
        // Relative, so the document is the same whichever host served it and a client resolves it against the
        // address it fetched the document from (or the base URL it is given).
        document.Servers = [new OpenApiServer { Url = "/", Description = "The Gymwire that serves this document" }];
        foreach (var tag in document.Tags ?? new HashSet<OpenApiTag>())
        {
            tag.Description ??= TagDescriptions.GetValueOrDefault(tag.Name ?? "");
        }
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[ApiKeyScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "cs_ + 64 lowercase hex",
            Description = "An API key from Dashboard → Settings → API Keys or `POST /api/gym/api-keys`. Scopes: `read` (triggers, GET endpoints), `write` (actions and mutations).",
        };
        document.Components.SecuritySchemes[OwnerSessionScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "gws_ + 64 lowercase hex",
            Description = "A gym owner's session token from `POST /api/auth/login`. Owners have every scope; API-key management requires it.",
        };
        document.Components.Schemas ??= new Dictionary<string, IOpenApiSchema>();
        document.Components.Schemas[nameof(ErrorResponse)] = ErrorSchema();
        return Task.CompletedTask;
    }

    private static readonly Dictionary<string, string> TagDescriptions = new()
    {
        ["Auth"] = "Owner sign-in (bearer session tokens) and the caller's identity.",
        ["API keys"] = "Scoped API keys: shown once, stored hashed, revocable. Owner sessions only.",
        ["Zapier"] = "Polling triggers and actions for Zapier, Make and scripts.",
        ["Members"] = "The gym's members and coaches.",
        ["Memberships"] = "Membership plans and memberships.",
        ["Payments"] = "Payments (invoices): received, failed, refunded.",
        ["Training sessions"] = "Training sessions members log.",
        ["Attendance"] = "Check-ins.",
        ["Classes"] = "The weekly class schedule.",
        ["Leads"] = "Leads in the gym's CRM.",
        ["Contracts"] = "Signed membership contracts.",
        ["Events"] = "The gym's event log (the outbox webhooks are delivered from), in commit order: the lossless way to sync everything with `after_sequence`.",
        ["SMS"] = "The outbound SMS queue.",
        ["Stripe"] = "Payments in from Stripe: signed webhooks, the gym's endpoint secret, and the events received.",
        ["Exports"] = "Accounting exports (CSV for QuickBooks and Xero) and the scheduled report.",
        ["Webhooks"] = "Webhook subscriptions, deliveries, test sends, redelivery and secret rotation.",
    };

    /// <summary>
    /// A stable <c>operationId</c> (<c>{tag}_{handler}</c> in snake_case) for client generators, and a summary
    /// from the handler's name where the endpoint does not give one.
    /// </summary>
    private static Task NameOperation(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        var method = context.Description.ActionDescriptor.EndpointMetadata.OfType<System.Reflection.MethodInfo>().FirstOrDefault();
        var tag = operation.Tags?.FirstOrDefault()?.Name ?? "gymwire";
        if (method is not null)
        {
            operation.OperationId ??= Snake(tag) + "_" + Snake(method.Name);
            operation.Summary ??= Humanize(method.Name) + (method.Name.Any(char.IsLower) && method.Name.Count(char.IsUpper) == 1 ? $" ({tag.ToLowerInvariant()})" : "");
        }
        return Task.CompletedTask;
    }

    private static string Snake(string name) =>
        System.Text.RegularExpressions.Regex.Replace(name, "(?<=[a-z0-9])([A-Z])", "_$1").Replace(' ', '_').Replace('-', '_').ToLowerInvariant();

    private static string Humanize(string name) =>
        string.Concat(name.Select((c, i) => char.IsUpper(c) && i > 0 ? " " + char.ToLowerInvariant(c) : c.ToString()));

    internal static OpenApiSchema ErrorSchema() => new()
    {
        Type = JsonSchemaType.Object,
        Description = "The one error shape.",
        Properties = new Dictionary<string, IOpenApiSchema>
        {
            ["error"] = new OpenApiSchema { Type = JsonSchemaType.String, Description = "Human-readable error message" },
        },
        Required = new HashSet<string> { "error" },
        Examples = [new JsonObject { ["error"] = "Human-readable error message" }],
    };

    /// <summary>Security requirements from the endpoint's policy, and the errors every layer may answer with.</summary>
    private static Task DescribeSecurityAndErrors(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        // Every policy an endpoint names must pass (webhook management needs both `read` and `write`).
        var policies = metadata.OfType<IAuthorizeData>().Select(a => a.Policy).OfType<string>().Distinct().ToList();
        var anonymous = metadata.OfType<IAllowAnonymous>().Any();
        operation.Responses ??= new OpenApiResponses();
        if (policies.Count == 0 || anonymous)
        {
            // Explicitly open: `security: [{}]`.
            operation.Security = [new OpenApiSecurityRequirement()];
        }
        else
        {
            var document = context.Document!;
            operation.Security = [];
            operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(OwnerSessionScheme, document)] = [] });
            var ownerOnly = policies.Contains(Policies.Owner);
            if (!ownerOnly)
            {
                operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(ApiKeyScheme, document)] = policies });
            }
            var scopes = string.Join(" and ", policies.Select(p => $"`{p}`"));
            var scopeNote = ownerOnly
                ? "Requires an owner session; API keys get 403 whatever their scopes."
                : policies.Count == 1
                    ? $"Requires scope {scopes} (an API key with {scopes}, or an owner session)."
                    : $"Requires scopes {scopes} (an API key with all of them, or an owner session).";
            operation.Description = string.IsNullOrEmpty(operation.Description) ? scopeNote : operation.Description + "\n\n" + scopeNote;
            AddError(operation, context, "401", "Missing, malformed, unknown, revoked or expired credentials.");
            AddError(operation, context, "403", ownerOnly ? "Not an owner session."
                : policies.Count == 1 ? $"The API key lacks the {scopes} scope." : $"The API key lacks the {string.Join(" or ", policies.Select(p => $"`{p}`"))} scope.");
        }
        if (metadata.OfType<EnableRateLimitingAttribute>().FirstOrDefault() is { } limit)
        {
            AddError(operation, context, "429", limit.PolicyName == RateLimitPolicies.Destructive
                ? "Rate limit `destructive` exceeded (only calls that succeeded count); see the `Retry-After` header."
                : $"Rate limit `{limit.PolicyName}` exceeded; see the `Retry-After` header.");
        }
        var method = context.Description.HttpMethod;
        if (method is "POST" or "PATCH" or "PUT")
        {
            AddError(operation, context, "400", "Missing or invalid parameters, or malformed JSON.");
            AddError(operation, context, "413", "Request body too large.");
            if (operation.RequestBody is not null)
            {
                AddError(operation, context, "415", "The body must be application/json.");
            }
        }
        if (context.Description.RelativePath?.Contains('{', StringComparison.Ordinal) == true)
        {
            AddError(operation, context, "404", "Not found (or belongs to another gym).");
        }
        if (metadata.OfType<IdempotentCreateMetadata>().Any())
        {
            operation.Parameters ??= [];
            operation.Parameters.Add(new OpenApiParameter
            {
                Name = Features.Zapier.ZapierActions.IdempotencyHeader,
                In = ParameterLocation.Header,
                Description = "Optional, 1 to 255 characters. A retry with the same key and body (within 24 h) answers the first response again, " +
                    "with `Idempotent-Replayed: true`, and creates nothing; the same key with a different body is 409. A create that fails leaves the key unused.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.String, MinLength = 1, MaxLength = 255 },
            });
            AddError(operation, context, "409", "The Idempotency-Key was used with a different request.");
        }
        AddError(operation, context, "500", "Internal server error.");
        return Task.CompletedTask;
    }

    internal static void AddError(OpenApiOperation operation, OpenApiOperationTransformerContext context, string status, string description)
    {
        operation.Responses ??= new OpenApiResponses();
        if (operation.Responses.TryGetValue(status, out var existing))
        {
            // The handler already declares it (from its Results<...> type); make sure it points at the shared schema.
            if (existing is OpenApiResponse response && response.Content is { } content)
            {
                foreach (var media in content.Values)
                {
                    media.Schema = new OpenApiSchemaReference(nameof(ErrorResponse), context.Document);
                }
            }
            return;
        }
        operation.Responses[status] = new OpenApiResponse
        {
            Description = description,
            Content = new Dictionary<string, OpenApiMediaType>
            {
                ["application/json"] = new() { Schema = new OpenApiSchemaReference(nameof(ErrorResponse), context.Document) },
            },
        };
    }
}
