using System.Net;
using System.Reflection;
using System.Text.RegularExpressions;
using Gymwire.Features.ApiKeys;
using Gymwire.Features.Email;
using Gymwire.Features.Sms;
using Gymwire.Features.Stripe;
using Gymwire.Features.Webhooks;
using Gymwire.Features.Zapier;
using Gymwire.Infrastructure;
using Gymwire.Infrastructure.Telemetry;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Sms;
using Gymwire.Tests.Webhooks;

namespace Gymwire.Tests.Telemetry;

/// <summary>
/// A Gymwire with the scrape on (per-subscription series too), webhooks to loopback, Twilio's stand-in with status
/// callbacks, and a low trigger limit: enough to make every series docs/metrics.md names.
/// </summary>
public abstract class DocumentedSeriesFixture(Store store) : TwilioCallbackFixture(store)
{
    public const int TriggerLimit = 3;

    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        .. base.Settings(),
        new("Webhooks:AllowHttp", "true"),
        new("Webhooks:AllowedNetworks:0", "127.0.0.0/8"),
        new("Webhooks:RetryJitter", "0"),
        new("Webhooks:Timeout", "00:00:10"),
        new("Metrics:Prometheus:Enabled", "true"),
        new("Metrics:PerSubscription", "true"),
        new("RateLimiting:Triggers:PermitLimit", TriggerLimit.ToString(System.Globalization.CultureInfo.InvariantCulture)),
    ];
}

public sealed class SqliteDocumentedSeries() : DocumentedSeriesFixture(Store.Sqlite);

public sealed class PostgresDocumentedSeries() : DocumentedSeriesFixture(Store.Postgres);

/// <summary>
/// docs/metrics.md names only series and labels the server exports: the doc is parsed (its instrument table, its
/// PromQL examples, its alert rules, every <c>gymwire_</c> name in its text and the other meters it says are reported
/// or left out), traffic makes every series, and the scrape must hold each name (and no Gymwire series or label the
/// table lacks); the label values the doc uses must be values the code can record.
/// </summary>
public abstract partial class DocumentedSeriesTests(DocumentedSeriesFixture fx)
{
    [Collection(ScrapesAlone.Name)]
    public sealed class Sqlite(SqliteDocumentedSeries f) : DocumentedSeriesTests(f), IClassFixture<SqliteDocumentedSeries>;
    [Collection(ScrapesAlone.Name)]
    public sealed class Postgres(PostgresDocumentedSeries f) : DocumentedSeriesTests(f), IClassFixture<PostgresDocumentedSeries>;

    /// <summary>Series the doc names that this test cannot make; each with why.</summary>
    private static readonly Dictionary<string, string> NotMade = new()
    {
        ["aspnetcore.diagnostics.exceptions"] = "recorded only for a request that throws, which no client input may cause",
    };

    /// <summary>Prometheus's own series (not Gymwire's): the target's health, with the scrape job's label.</summary>
    private static readonly HashSet<string> PrometheusOwn = ["up"];

    // The name ZapierMetrics gives a type outside the known list.
    private const string OtherType = "other";

    /// <summary>The values the code can record, per instrument and tag (the constants the recording code uses).</summary>
    private static readonly Dictionary<(string Instrument, string Tag), string[]> Emittable = new()
    {
        [("gymwire.zapier.trigger.polls", ZapierMetrics.TypeTag)] = [.. ZapierTriggers.Types, OtherType],
        [("gymwire.zapier.trigger_cache.lookups", ZapierMetrics.TypeTag)] = ZapierTriggers.Types,
        [("gymwire.zapier.trigger_cache.lookups", GymwireInstruments.OutcomeTag)] =
            [ZapierMetrics.CacheHit, ZapierMetrics.CacheMiss, ZapierMetrics.CacheStale, ZapierMetrics.CacheBypass],
        [("gymwire.zapier.actions", ZapierMetrics.TypeTag)] = [.. ZapierActions.Types, OtherType],
        [("gymwire.rate_limit.rejections", RateLimitMetrics.PolicyTag)] = Constants(typeof(RateLimitPolicies)),
        [("gymwire.api_key.authentications", GymwireInstruments.OutcomeTag)] = Constants(typeof(ApiKeyMetrics.Outcomes)),
        [("gymwire.sms.sends", GymwireInstruments.OutcomeTag)] = Constants(typeof(SmsMetrics.Outcomes)),
        [("gymwire.sms.deliveries", GymwireInstruments.OutcomeTag)] = [SmsStatuses.Delivered, SmsStatuses.Undelivered],
        [("gymwire.email.sends", GymwireInstruments.OutcomeTag)] = Constants(typeof(EmailMetrics.Outcomes)),
        [("gymwire.stripe.events", GymwireInstruments.OutcomeTag)] = [.. Constants(typeof(StripeMetrics.Outcomes)), .. StripeOutcomes.All],
        [("gymwire.webhook.deliveries.created", DeliveryMetrics.TriggerTag)] = DeliveryMetrics.Triggers.All,
        [("gymwire.webhook.attempts", GymwireInstruments.OutcomeTag)] = Constants(typeof(DeliveryMetrics.Outcomes)),
        [("gymwire.webhook.attempts", DeliveryMetrics.TriggerTag)] = DeliveryMetrics.Triggers.All,
        [("gymwire.webhook.attempt.duration", GymwireInstruments.OutcomeTag)] = Constants(typeof(DeliveryMetrics.Outcomes)),
        [("gymwire.webhook.attempt.duration", DeliveryMetrics.TriggerTag)] = DeliveryMetrics.Triggers.All,
    };

    private static string[] Constants(Type type) =>
        [.. type.GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral && f.FieldType == typeof(string)).Select(f => (string)f.GetRawConstantValue()!)];

    [Fact]
    public async Task Every_series_label_and_label_value_the_doc_names_is_exported()
    {
        var doc = Doc.Parse(File.ReadAllText(DocPath));
        Assert.NotEmpty(doc.Instruments);
        Assert.NotEmpty(doc.Queries);
        Assert.All(NotMade.Keys, name => Assert.Contains(name, doc.Exported));

        // Label values first: they need no traffic.
        var problems = ValueProblems(doc);

        // The receiver lives until the scrape: see ScrapesAlone.
        await using var receiver = await TestReceiver.StartAsync();
        await MakeTrafficAsync(receiver);

        using var scraper = fx.Client();
        List<string> missing = [];
        try
        {
            // Counters appear with the event, but a few are recorded just after the state a test can wait on (the
            // delivered latency after its batch commits, the gauges on their next read): scrape until all are there.
            await Eventually.TrueAsync(async () => (missing = Missing(doc, Scrape.Parse(await scraper.GetStringAsync("/metrics")))).Count == 0,
                TimeSpan.FromSeconds(10), "every series docs/metrics.md names");
        }
        catch (Xunit.Sdk.FailException)
        {
        }
        problems.AddRange(missing);
        Assert.True(problems.Count == 0, "docs/metrics.md and the server disagree:\n" + string.Join("\n", problems));
    }

    /// <summary>Polls, actions, rejections, a delivery delivered and one failed, an SMS sent and delivered, a Stripe post refused, an email.</summary>
    private async Task MakeTrafficAsync(TestReceiver receiver)
    {
        var (gym, writer) = await fx.GymWithWriterAsync();
        using var _ = writer;
        receiver.On("/down", new Reply(500));
        var ok = await gym.CreateWebhookAsync(receiver.Url("/ok"), "member.joined");
        var down = await gym.CreateWebhookAsync(receiver.Url("/down"), "lead.created");

        // Trigger polls up to the limit and past it (a rate-limit rejection), and a key that is not one.
        for (var i = 0; i < DocumentedSeriesFixture.TriggerLimit; i++)
        {
            await (await writer.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        }
        await (await writer.GetAsync("/api/zapier/triggers?type=new_member")).AssertErrorAsync(HttpStatusCode.TooManyRequests);
        using (var malformed = fx.Client("cs_not-a-key"))
        {
            await (await malformed.GetAsync("/api/me")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        }

        // A delivered event, and a test send to a failing receiver (an attempt failed, a delivery undeliverable).
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_documented"));
        await fx.WaitForDeliveryAsync(ok.Id, d => d.Status == DeliveryStatus.Delivered, "the member.joined delivery delivered");
        using (var owner = gym.Owner())
        {
            var test = await (await owner.PostJsonAsync($"/api/gym/webhooks/{down.Id}/test", new { })).AssertStatusAsync(HttpStatusCode.OK);
            Assert.Equal(DeliveryStatus.Undeliverable, test.GetProperty("status").GetString());
        }

        // An SMS sent through the stand-in, and Twilio's callback that it was delivered.
        var body = $"Documented {Guid.NewGuid():N}";
        var sms = await (await writer.PostJsonAsync("/api/zapier/actions?type=send_sms", new { phone = "+15551234567", message = body })).AssertStatusAsync(HttpStatusCode.Created);
        var sent = await fx.AwaitSmsAsync(sms.GetProperty("id").GetGuid(), m => m.Status is SmsStatuses.Sent or SmsStatuses.Failed);
        Assert.Equal(SmsStatuses.Sent, sent.Status);
        using (var callback = await fx.Twilio.CallBackAsync(fx.BaseAddress, Assert.Single(fx.Twilio.AcceptedWith(body)), "delivered"))
        {
            Assert.Equal(HttpStatusCode.OK, callback.StatusCode);
        }

        // A Stripe post whose signature does not verify.
        using (var stripe = fx.Client())
        using (var post = new HttpRequestMessage(HttpMethod.Post, $"{StripeEndpoints.WebhookPath}/{gym.GymId}") { Content = new StringContent("{}") })
        {
            post.Headers.TryAddWithoutValidation("Stripe-Signature", "t=1,v1=00");
            await (await stripe.SendAsync(post)).AssertErrorAsync(HttpStatusCode.BadRequest);
        }

        // An owner email on a server without SMTP (what a password reset or a scheduled report would send).
        await Assert.ThrowsAsync<EmailException>(() => fx.Services.GetRequiredService<IEmailSender>()
            .SendAsync(new EmailMessage(["owner@example.com"], "Documented", "text"), CancellationToken.None));
    }

    /// <summary>What the doc names that the scrape lacks.</summary>
    private static List<string> Missing(Doc doc, Scrape scrape)
    {
        List<string> missing = [];
        foreach (var instrument in doc.Instruments)
        {
            if (instrument.PrometheusName is { } named && named != instrument.Series[0])
            {
                missing.Add($"the table names `{instrument.Name}` `{named}`, but Prometheus calls it `{instrument.Series[0]}`");
            }
            foreach (var series in instrument.Series)
            {
                if (!scrape.Labels.TryGetValue(series, out var labels))
                {
                    missing.Add($"table: `{instrument.Name}`: no series `{series}` in the scrape");
                    continue;
                }
                foreach (var tag in instrument.Tags.Keys.Select(Doc.Label).Concat(series.EndsWith("_bucket", StringComparison.Ordinal) ? ["le"] : []))
                {
                    if (!labels.Contains(tag))
                    {
                        missing.Add($"table: `{instrument.Name}`: `{series}` has no label `{tag}` (it has {string.Join(", ", labels.Order())})");
                    }
                }
            }
        }
        // And the other way: every Gymwire series and label the scrape holds is in the table.
        foreach (var (series, labels) in scrape.Labels.Where(s => s.Key.StartsWith("gymwire_", StringComparison.Ordinal)))
        {
            if (doc.Instruments.FirstOrDefault(i => i.Series.Contains(series)) is not { } instrument)
            {
                missing.Add($"scrape: `{series}` is not in the table");
                continue;
            }
            foreach (var label in labels.Where(l => !l.StartsWith("otel_scope_", StringComparison.Ordinal) && l != "le" && !instrument.Tags.Keys.Any(t => Doc.Label(t) == l)))
            {
                missing.Add($"scrape: `{series}` has the label `{label}`, which the table does not give `{instrument.Name}`");
            }
        }
        foreach (var query in doc.Queries)
        {
            var metrics = query.Metrics.Where(m => !PrometheusOwn.Contains(m)).ToList();
            foreach (var metric in metrics.Where(m => !scrape.Labels.ContainsKey(m)))
            {
                missing.Add($"query `{query.Expression}`: no series `{metric}` in the scrape");
            }
            foreach (var matcher in query.Matchers.Where(m => !PrometheusOwn.Contains(m.Metric)))
            {
                if (scrape.Labels.TryGetValue(matcher.Metric, out var labels) && !labels.Contains(matcher.Label))
                {
                    missing.Add($"query `{query.Expression}`: `{matcher.Metric}` has no label `{matcher.Label}`");
                }
            }
            foreach (var label in query.GroupedBy.Where(l => !metrics.Any(m => scrape.Labels.GetValueOrDefault(m)?.Contains(l) == true)))
            {
                missing.Add($"query `{query.Expression}`: grouped by `{label}`, which none of {string.Join(", ", metrics)} has");
            }
        }
        foreach (var name in doc.GymwireNames.Where(n => !scrape.Labels.ContainsKey(n) && !scrape.Labels.Values.Any(l => l.Contains(n))))
        {
            missing.Add($"text: `{name}` is neither a series nor a label in the scrape");
        }
        // The scrape holds every meter of this process, the test's own HttpClients' and the receiver's Kestrel's too:
        // what is checked here is that the names the doc gives are the names those meters export.
        foreach (var name in doc.Exported.Where(n => !NotMade.ContainsKey(n)))
        {
            var prefix = Doc.PrometheusPrefix(name);
            if (!scrape.Labels.Keys.Any(s => s == prefix || s.StartsWith(prefix + "_", StringComparison.Ordinal)))
            {
                missing.Add($"text: `{name}` is said to be reported, but no `{prefix}…` series is in the scrape");
            }
        }
        foreach (var name in doc.LeftOut)
        {
            var prefix = Doc.PrometheusPrefix(name);
            if (scrape.Labels.Keys.FirstOrDefault(s => s == prefix || s.StartsWith(prefix + "_", StringComparison.Ordinal)) is { } found)
            {
                missing.Add($"text: `{name}` is said to be left out, but the scrape has `{found}`");
            }
        }
        return missing;
    }

    /// <summary>The label values the doc uses (in the table and in query matchers) that the code never records.</summary>
    private static List<string> ValueProblems(Doc doc)
    {
        List<string> problems = [];
        foreach (var instrument in doc.Instruments)
        {
            foreach (var (tag, values) in instrument.Tags.Where(t => t.Value.Count > 0))
            {
                if (!Emittable.TryGetValue((instrument.Name, tag), out var known))
                {
                    problems.Add($"table: `{instrument.Name}` lists values of `{tag}`, and this test does not know the code's: add them to Emittable");
                    continue;
                }
                problems.AddRange(values.Where(v => !known.Contains(v)).Select(v => $"table: `{instrument.Name}` `{tag}` `{v}` is never recorded (the code's: {string.Join(", ", known)})"));
            }
        }
        foreach (var query in doc.Queries)
        {
            foreach (var matcher in query.Matchers)
            {
                if (doc.Instruments.FirstOrDefault(i => i.Series.Contains(matcher.Metric)) is not { } instrument)
                {
                    continue; // Not Gymwire's (ASP.NET Core's, Prometheus's): its values are not this code's.
                }
                var tag = instrument.Tags.Keys.FirstOrDefault(t => Doc.Label(t) == matcher.Label);
                if (tag is null)
                {
                    problems.Add($"query `{query.Expression}`: `{matcher.Label}` is not a tag the table gives `{instrument.Name}`");
                    continue;
                }
                if (!Emittable.TryGetValue((instrument.Name, tag), out var known))
                {
                    problems.Add($"query `{query.Expression}`: this test does not know the values of `{instrument.Name}` `{tag}`: add them to Emittable");
                    continue;
                }
                var pattern = matcher.Op is "=~" or "!~" ? new Regex($"^(?:{matcher.Value})$") : null;
                var alternatives = pattern is null ? [matcher.Value] : PlainAlternation().IsMatch(matcher.Value) ? matcher.Value.Split('|') : null;
                if (alternatives is not null)
                {
                    problems.AddRange(alternatives.Where(v => !known.Contains(v)).Select(v => $"query `{query.Expression}`: `{matcher.Label}` `{v}` is never recorded (the code's: {string.Join(", ", known)})"));
                }
                else if (!known.Any(pattern!.IsMatch))
                {
                    problems.Add($"query `{query.Expression}`: `{matcher.Value}` matches none of {string.Join(", ", known)}");
                }
            }
        }
        return problems;
    }

    [GeneratedRegex(@"^[a-z0-9_\-]+(\|[a-z0-9_\-]+)*$")]
    private static partial Regex PlainAlternation();

    private static string DocPath
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Gymwire.slnx")))
            {
                dir = dir.Parent;
            }
            return Path.Combine(dir?.FullName ?? throw new InvalidOperationException("repository root not found"), "docs", "metrics.md");
        }
    }

    /// <summary>The scrape's series names (histograms' <c>_bucket</c>, <c>_count</c> and <c>_sum</c> each) with the label names seen on each.</summary>
    private sealed record Scrape(Dictionary<string, HashSet<string>> Labels)
    {
        public static Scrape Parse(string text)
        {
            var labels = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
            foreach (var line in text.Split('\n').Where(l => l.Length > 0 && l[0] != '#'))
            {
                var end = line.IndexOfAny(['{', ' ']);
                var name = end < 0 ? line : line[..end];
                var set = labels.TryGetValue(name, out var s) ? s : labels[name] = [];
                if (end >= 0 && line[end] == '{')
                {
                    foreach (Match m in Regex.Matches(line[end..], @"([a-zA-Z_][a-zA-Z0-9_]*)=""(?:[^""\\]|\\.)*"""))
                    {
                        set.Add(m.Groups[1].Value);
                    }
                }
            }
            return new Scrape(labels);
        }
    }

    private sealed record Instrument(string Name, string Kind, string? Unit, string? PrometheusName, Dictionary<string, List<string>> Tags)
    {
        /// <summary>The Prometheus names: dots to underscores, <c>_seconds</c> for seconds, <c>_total</c> for counters; a histogram's three.</summary>
        public string[] Series
        {
            get
            {
                var name = Name.Replace('.', '_') + (Unit == "s" ? "_seconds" : "") + (Kind == "counter" ? "_total" : "");
                return Kind == "histogram" ? [name + "_bucket", name + "_count", name + "_sum"] : [name];
            }
        }
    }

    private sealed record Matcher(string Metric, string Label, string Op, string Value);

    private sealed record Query(string Expression, List<string> Metrics, List<Matcher> Matchers, List<string> GroupedBy);

    /// <summary>What docs/metrics.md says is exported.</summary>
    private sealed partial record Doc(List<Instrument> Instruments, List<Query> Queries, List<string> GymwireNames, List<string> Exported, List<string> LeftOut)
    {
        public static string Label(string tag) => tag.Replace('.', '_');

        /// <summary>The Prometheus prefix of an instrument name or a <c>prefix.*</c> pattern.</summary>
        public static string PrometheusPrefix(string name) => name.Replace(".*", "", StringComparison.Ordinal).Replace('.', '_');

        public static Doc Parse(string text)
        {
            var fences = Fence().Matches(text);
            var prose = Fence().Replace(text, "");
            List<Query> queries = [];
            foreach (Match fence in fences)
            {
                var (language, body) = (fence.Groups[1].Value, fence.Groups[2].Value);
                if (language == "promql")
                {
                    // One query a line; an indented line continues the one before; # starts a comment.
                    List<string> lines = [];
                    foreach (var line in body.Split('\n').Where(l => l.Trim().Length > 0 && !l.TrimStart().StartsWith('#')))
                    {
                        if (char.IsWhiteSpace(line[0]) && lines.Count > 0)
                        {
                            lines[^1] += " " + line.Trim();
                        }
                        else
                        {
                            lines.Add(line.Trim());
                        }
                    }
                    queries.AddRange(lines.Select(ParseQuery));
                }
                else if (language == "yaml")
                {
                    queries.AddRange(Expr().Matches(body).Select(m => ParseQuery(m.Groups[1].Value.Trim())));
                }
            }
            var paragraphs = prose.Split("\n\n");
            var intro = paragraphs.First(p => p.StartsWith("Gymwire measures itself", StringComparison.Ordinal));
            var leftOut = paragraphs.First(p => p.StartsWith("Left out", StringComparison.Ordinal));
            return new Doc(Table(prose), queries,
                [.. CodeSpan().Matches(prose).Select(m => GymwireName().Match(m.Groups[1].Value)).Where(m => m.Success).Select(m => m.Value).Distinct()],
                OtherMeters(intro), OtherMeters(leftOut));
        }

        // Other meters' instruments, as the prose names them (`http.server.request.duration`, `kestrel.*`).
        private static List<string> OtherMeters(string paragraph) =>
            [.. CodeSpan().Matches(paragraph).Select(m => m.Groups[1].Value).Where(n => InstrumentName().IsMatch(n))];

        private static List<Instrument> Table(string prose)
        {
            var lines = prose.Split('\n');
            var header = Array.FindIndex(lines, l => l.StartsWith("| instrument", StringComparison.Ordinal));
            Assert.True(header >= 0, "docs/metrics.md has no instrument table (a line starting '| instrument')");
            List<Instrument> rows = [];
            foreach (var line in lines.Skip(header + 2).TakeWhile(l => l.StartsWith('|')))
            {
                var cells = line.Trim().Trim('|').Split('|');
                Assert.True(cells.Length == 3, $"an instrument row of three cells: {line}");
                var kindAndUnit = cells[1].Split(',', StringSplitOptions.TrimEntries);
                var kind = kindAndUnit[0].TrimEnd('s');
                Assert.Contains(kind, new[] { "counter", "histogram", "gauge" });
                var unit = kindAndUnit.ElementAtOrDefault(1);
                var tags = Tags(cells[2], rows);
                string? previous = null;
                foreach (var code in CodeSpan().Matches(cells[0]).Select(m => m.Groups[1].Value))
                {
                    if (code.StartsWith('.') && previous is not null)
                    {
                        // `a.b.paused` / `.failing`: the last part replaced.
                        previous = previous[..previous.LastIndexOf('.')] + code;
                        rows.Add(new Instrument(previous, kind, unit, null, tags));
                    }
                    else if (code.Contains('.', StringComparison.Ordinal))
                    {
                        previous = code;
                        rows.Add(new Instrument(code, kind, unit, null, tags));
                    }
                    else
                    {
                        // `name` (`prometheus_name`): the Prometheus name the doc gives.
                        Assert.True(rows.Count > 0 && previous is not null, $"a Prometheus name before any instrument: {line}");
                        rows[^1] = rows[^1] with { PrometheusName = code };
                    }
                }
            }
            return rows;
        }

        /// <summary>The tags a row names, each with the values listed after it (<c>`tag`: `a`, `b`</c> or <c>`tag` (`a`, `b`)</c>).</summary>
        private static Dictionary<string, List<string>> Tags(string cell, List<Instrument> earlier)
        {
            if (AsRow().Match(cell.Trim()) is { Success: true } same)
            {
                var row = earlier.LastOrDefault(i => i.Name.EndsWith("." + same.Groups[1].Value, StringComparison.Ordinal));
                Assert.True(row is not null, $"'as {same.Groups[1].Value}' names no earlier row");
                return row.Tags;
            }
            var tags = new Dictionary<string, List<string>>();
            foreach (var segment in cell.Split(';'))
            {
                // Parenthesised prose is not a list of values; a parenthesis that opens on a code span is.
                var text = segment;
                for (var before = ""; before != text;)
                {
                    before = text;
                    text = Prose().Replace(text, "");
                }
                string? current = null;
                foreach (var code in CodeSpan().Matches(text).Select(m => m.Groups[1].Value))
                {
                    if (TagName().IsMatch(code))
                    {
                        current = code;
                        tags.TryAdd(code, []);
                    }
                    else if (current is not null && TagValue().IsMatch(code))
                    {
                        tags[current].Add(code);
                    }
                }
            }
            return tags;
        }

        private static Query ParseQuery(string expression)
        {
            var text = Range().Replace(expression, " ");
            List<Matcher> matchers = [];
            foreach (Match selector in Selector().Matches(text))
            {
                matchers.AddRange(LabelMatcher().Matches(selector.Groups[2].Value)
                    .Select(m => new Matcher(selector.Groups[1].Value, m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Value)));
            }
            text = Braces().Replace(text, " ");
            List<string> grouped = [.. Grouping().Matches(text).SelectMany(m => m.Groups[2].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))];
            text = Grouping().Replace(text, " ");
            List<string> metrics = [.. Identifier().Matches(text).Select(m => m.Value).Where(id => !Keywords.Contains(id)).Distinct()];
            return new Query(expression, metrics, matchers, grouped);
        }

        private static readonly HashSet<string> Keywords = ["and", "or", "unless", "bool", "offset", "on", "ignoring", "group_left", "group_right"];

        [GeneratedRegex(@"```(\w*)\n(.*?)```", RegexOptions.Singleline)]
        private static partial Regex Fence();

        [GeneratedRegex(@"expr:\s*(.+)")]
        private static partial Regex Expr();

        [GeneratedRegex(@"`([^`\n]+)`")]
        private static partial Regex CodeSpan();

        [GeneratedRegex(@"^gymwire_[a-z0-9_]+")]
        private static partial Regex GymwireName();

        [GeneratedRegex(@"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.([a-z0-9_]+|\*)$")]
        private static partial Regex InstrumentName();

        [GeneratedRegex(@"^as (\w+)$")]
        private static partial Regex AsRow();

        [GeneratedRegex(@"\((?!`)[^()]*\)")]
        private static partial Regex Prose();

        [GeneratedRegex(@"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")]
        private static partial Regex TagName();

        [GeneratedRegex(@"^[a-z0-9][a-z0-9_\-]*$")]
        private static partial Regex TagValue();

        [GeneratedRegex(@"\[[^\]]*\]")]
        private static partial Regex Range();

        [GeneratedRegex(@"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")]
        private static partial Regex Selector();

        [GeneratedRegex(@"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*""([^""]*)""")]
        private static partial Regex LabelMatcher();

        [GeneratedRegex(@"\{[^}]*\}")]
        private static partial Regex Braces();

        [GeneratedRegex(@"\b(by|without)\s*\(([^)]*)\)")]
        private static partial Regex Grouping();

        // A name not followed by '(' (a function or an aggregation); numbers never start with a letter.
        [GeneratedRegex(@"(?<![a-zA-Z0-9_:.])[a-zA-Z_:][a-zA-Z0-9_:]*(?![a-zA-Z0-9_:])(?!\s*\()")]
        private static partial Regex Identifier();
    }
}
