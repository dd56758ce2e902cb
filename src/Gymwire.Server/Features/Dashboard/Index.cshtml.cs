using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard;

public sealed class IndexModel : PageModel
{
    public IActionResult OnGet() => RedirectToPage("/Settings/Integrations");
}
