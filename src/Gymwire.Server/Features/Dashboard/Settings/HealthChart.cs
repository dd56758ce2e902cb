using System.Text;
using System.Text.Encodings.Web;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>
/// The health panel's bar chart as inline SVG, drawn on the server: no script or library, and it works under the
/// dashboard's CSP (colours come from classes in dashboard.css, never from style attributes).
/// Each bar stacks a period's deliveries by outcome; hovering a bar shows its figures.
/// </summary>
public static class HealthChart
{
    private const int Width = 480;
    private const int Height = 150;
    private const int Top = 14;
    private const int Bottom = 128;
    private const int Left = 4;

    public static string Svg(IReadOnlyList<ChartBar> bars, Func<ChartBar, string> axisLabel, Func<ChartBar, string> fullLabel, int labelEvery, string id)
    {
        var html = HtmlEncoder.Default;
        var max = Math.Max(1, bars.Max(b => b.Counts.Total));
        var slot = (double)(Width - Left) / bars.Count;
        var barWidth = Math.Max(2, slot * 0.7);
        var total = bars.Sum(b => b.Counts.Total);
        var failed = bars.Sum(b => b.Counts.Undeliverable);
        var sb = new StringBuilder();
        sb.Append(Inv($"<svg class=\"chart-svg\" id=\"{id}\" viewBox=\"0 0 {Width} {Height}\" role=\"img\" aria-labelledby=\"{id}-title\">"));
        sb.Append(Inv($"<title id=\"{id}-title\">{total:#,0} deliveries, {failed:#,0} undeliverable; the busiest bar has {max:#,0}</title>"));
        sb.Append(Inv($"<line class=\"axis\" x1=\"0\" y1=\"{Bottom}\" x2=\"{Width}\" y2=\"{Bottom}\"/>"));
        sb.Append(Inv($"<line class=\"grid\" x1=\"0\" y1=\"{Top}\" x2=\"{Width}\" y2=\"{Top}\"/>"));
        sb.Append(Inv($"<text class=\"chart-label\" x=\"{Width}\" y=\"{Top - 3}\" text-anchor=\"end\">{max:#,0}</text>"));
        for (var i = 0; i < bars.Count; i++)
        {
            var bar = bars[i];
            var c = bar.Counts;
            var x = Left + i * slot + (slot - barWidth) / 2;
            var y = (double)Bottom;
            sb.Append(Inv($"<g class=\"bar\" data-start=\"{bar.Start:O}\"><title>{html.Encode(fullLabel(bar))}: {c.Delivered:#,0} delivered, {c.Retrying + c.Pending:#,0} retrying, {c.Undeliverable:#,0} undeliverable</title>"));
            foreach (var (count, css) in new[] { (c.Delivered, "delivered"), (c.Retrying + c.Pending, "retrying"), (c.Undeliverable, "undeliverable") })
            {
                if (count == 0)
                {
                    continue;
                }
                var height = Math.Max(1, (Bottom - Top) * (double)count / max);
                y -= height;
                sb.Append(Inv($"<rect class=\"{css}\" x=\"{x:0.##}\" y=\"{y:0.##}\" width=\"{barWidth:0.##}\" height=\"{height:0.##}\"/>"));
            }
            // An empty period still gets a hover target, so every bar's figures can be read.
            sb.Append(Inv($"<rect class=\"hit\" x=\"{Left + i * slot:0.##}\" y=\"{Top}\" width=\"{slot:0.##}\" height=\"{Bottom - Top}\"/></g>"));
            if (i % labelEvery == 0)
            {
                sb.Append(Inv($"<text class=\"chart-label\" x=\"{x + barWidth / 2:0.##}\" y=\"{Height - 6}\" text-anchor=\"middle\">{html.Encode(axisLabel(bar))}</text>"));
            }
        }
        sb.Append("</svg>");
        return sb.ToString();
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
