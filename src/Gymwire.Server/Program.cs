using Gymwire;
using Gymwire.Features.ApiKeys;
using Gymwire.Features.Attendance;
using Gymwire.Features.Classes;
using Gymwire.Features.Cluster;
using Gymwire.Features.Contracts;
using Gymwire.Features.Dashboard;
using Gymwire.Features.Demo;
using Gymwire.Features.Email;
using Gymwire.Features.Exports;
using Gymwire.Features.Leads;
using Gymwire.Features.Members;
using Gymwire.Features.Memberships;
using Gymwire.Features.Payments;
using Gymwire.Features.Sms;
using Gymwire.Features.Stripe;
using Gymwire.Features.Training;
using Gymwire.Features.Zapier;
using Gymwire.Infrastructure.OpenApi;
using Gymwire.Infrastructure.Telemetry;

return await GymwireCli.RunAsync(args);

namespace Gymwire
{
    /// <summary>Composition of the server: what runs, in the order it runs. Tests build the same app in-process.</summary>
    public static class GymwireApp
    {
        public static WebApplicationBuilder CreateBuilder(string[] args, Action<WebApplicationBuilder>? configure = null)
        {
            // appsettings.json is read from beside the executable (unless a content root is configured), wherever the server is
            // started from; relative paths in settings (the default SQLite file, gymwire.db) resolve against the current directory.
            var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = ContentRootSetup.Resolve(args) });
            builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
            builder.Services.AddServerLimits();
            builder.Services.AddGymwireForwardedHeaders();
            builder.Services.AddGymwireHttps();
            builder.Services.AddSingleton(TimeProvider.System);
            builder.Services.ConfigureHttpJsonOptions(o => GymwireJson.Configure(o.SerializerOptions));
            builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
            builder.Services.AddProblemDetails();

            builder.Services.AddOutbox();
            builder.Services.AddGymwireDatabase(builder.Configuration);
            builder.Services.AddOwners();
            builder.Services.AddGymwireAuth();
            builder.Services.AddApiKeys();
            builder.Services.AddZapier();
            builder.Services.AddGymwireDataProtection();
            builder.Services.AddDashboard();
            builder.Services.AddOidcSignIn(builder.Configuration);
            builder.Services.AddStripeConnector();
            builder.Services.AddSmsConnector();
            builder.Services.AddEmailConnector();
            builder.Services.AddGymwireRateLimiting(builder.Configuration);
            // Hosted services stop in the reverse order: the heartbeat stops after the delivery worker, so that other nodes
            // do not take this node for dead and release its claims while its attempts in flight finish.
            builder.Services.AddCluster();
            builder.Services.AddWebhooks(builder.Configuration);
            builder.Services.AddDemo();
            builder.Services.AddGymwireOpenApi();
            builder.Services.AddHealthChecks().AddCheck<DatabaseHealthCheck>("database");
            builder.AddGymwireTelemetry();

            configure?.Invoke(builder);
            return builder;
        }

        public static WebApplication Build(WebApplicationBuilder builder)
        {
            var app = builder.Build();
            app.UseGymwireTelemetry();
            app.UseGymwireForwardedHeaders();
            app.UseGymwireHttps();
            app.UseGymwireErrors();
            app.UseMiddleware<RequestGuard>();
            app.UseMiddleware<JsonBodyGuard>();
            app.UseRouting();
            app.UseAuthentication();
            app.UseAuthorization();
            app.UseGymwireRateLimiting();

            app.MapHealth();
            app.MapGymwireOpenApi();
            app.MapAuth();
            app.MapApiKeys();
            // The gym's data: every create (a POST to a collection) accepts Idempotency-Key.
            var gymData = app.MapGroup("").WithIdempotentCreates();
            gymData.MapMembers();
            gymData.MapMemberships();
            gymData.MapPayments();
            gymData.MapTrainingSessions();
            gymData.MapAttendance();
            gymData.MapClasses();
            gymData.MapLeads();
            gymData.MapContracts();
            app.MapEvents();
            app.MapSms();
            app.MapZapier();
            app.MapStripe();
            app.MapExports();
            app.MapEmail();
            app.MapDashboard();
            app.MapOidcSignIn();
            app.MapWebhooks();
            return app;
        }
    }
}
