namespace Gymwire.Features.Dashboard;

/// <summary>A secret shown once, in the response to the POST that created it (<c>Shared/_SecretField.cshtml</c>).</summary>
public sealed record SecretField(string Id, string Label, string Value);
