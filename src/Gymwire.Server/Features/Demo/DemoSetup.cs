namespace Gymwire.Features.Demo;

public static class DemoSetup
{
    /// <summary>The demo gym's seeder, run by <c>gymwire demo</c>.</summary>
    public static IServiceCollection AddDemo(this IServiceCollection services) => services.AddScoped<DemoSeeder>();
}
