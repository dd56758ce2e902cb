namespace Gymwire.Infrastructure;

public static class ContentRootSetup
{
    /// <summary>
    /// appsettings.json is read from beside the executable, wherever the server is started from (a service manager starts
    /// it in <c>/</c>), unless a content root is configured (<c>--contentRoot</c>, <c>ASPNETCORE_CONTENTROOT</c> or
    /// <c>DOTNET_CONTENTROOT</c>), which the host's own options would otherwise override.
    /// </summary>
    public static string Resolve(string[] args)
    {
        var configured = new ConfigurationBuilder().AddEnvironmentVariables("DOTNET_").AddEnvironmentVariables("ASPNETCORE_")
            .AddCommandLine(args).Build()[HostDefaults.ContentRootKey];
        return string.IsNullOrWhiteSpace(configured) ? AppContext.BaseDirectory : Path.GetFullPath(configured);
    }
}
