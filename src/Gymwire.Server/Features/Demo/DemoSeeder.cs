using Gymwire.Features.ApiKeys;
using Gymwire.Features.Attendance;
using Gymwire.Features.Classes;
using Gymwire.Features.Contracts;
using Gymwire.Features.Leads;
using Gymwire.Features.Members;
using Gymwire.Features.Memberships;
using Gymwire.Features.Payments;
using Gymwire.Features.Training;
using Microsoft.AspNetCore.Identity;

namespace Gymwire.Features.Demo;

public sealed record DemoGym(Guid GymId, string GymName, string OwnerEmail, string OwnerPassword, bool Created);

/// <summary>
/// A demo gym with a plausible month of data, every record made through the same code paths (and so
/// with the same events) as the API's, and integrations that look used: a webhook with a mixed delivery history and
/// an API key that was used minutes ago. Idempotent: a second run finds the demo owner and returns it.
/// </summary>
public sealed class DemoSeeder(
    GymwireDbContext db, GymProvisioning provisioning, UserManager<Owner> users, ApiKeyService keys, WebhookSecretProtector protector, TimeProvider clock)
{
    /// <summary>Where the demo webhook points: a reserved example domain (RFC 2606), so the demo never posts a gym's data anywhere real.</summary>
    public const string WebhookUrl = "https://example.com/gymwire-demo/webhook";

    public const string GymName = "Demo Jiu-Jitsu Academy";
    public const string OwnerEmail = "owner@demo.gymwire.local";
    public const string OwnerPassword = "demo-owner-password";

    private static readonly string[] FirstNames =
        ["Ana", "Bruno", "Carla", "Diego", "Elena", "Felipe", "Gina", "Hugo", "Iris", "Jonas", "Kai", "Lara", "Marco", "Nina", "Otto", "Paula",
         "Quinn", "Rafa", "Sara", "Tomas", "Uma", "Victor", "Wendy", "Xavi", "Yara", "Zeca"];
    private static readonly string[] LastNames = ["Silva", "Gracie", "Machado", "Costa", "Ribeiro", "Almeida", "Santos", "Oliveira", "Pereira", "Souza"];
    private static readonly string[] SessionTypes = ["gi", "no-gi", "open-mat", "drilling", "competition"];

    /// <summary>How many gyms the database holds besides the demo's own.</summary>
    public async Task<int> OtherGymsAsync(CancellationToken ct)
    {
        var demoGym = (await users.FindByEmailAsync(OwnerEmail))?.GymId;
        return await db.Gyms.CountAsync(g => g.Id != demoGym, ct);
    }

    public async Task<DemoGym> SeedAsync(CancellationToken ct)
    {
        if (await users.FindByEmailAsync(OwnerEmail) is { } existing)
        {
            var name = await db.Gyms.Where(g => g.Id == existing.GymId).Select(g => g.Name).FirstAsync(ct);
            return new DemoGym(existing.GymId, name, OwnerEmail, OwnerPassword, Created: false);
        }
        var (gym, _, error) = await provisioning.CreateAsync(GymName, OwnerEmail, OwnerPassword, ct);
        if (gym is null)
        {
            throw new InvalidOperationException(error);
        }

        var random = new Random(20260416);
        var today = clock.GetUtcNow().UtcDateTime;
        var start = today.AddDays(-30);
        DateTime At(int day, int hour) => start.AddDays(day).AddHours(hour).AddMinutes(random.Next(60));

        var plans = new[]
        {
            new MembershipPlan { Id = Guid.CreateVersion7(start), GymId = gym.GymId, Name = "Unlimited Monthly", PriceCents = 14900, Interval = "month", CreatedAt = start },
            new MembershipPlan { Id = Guid.CreateVersion7(start), GymId = gym.GymId, Name = "Twice a Week", PriceCents = 9900, Interval = "month", CreatedAt = start },
            new MembershipPlan { Id = Guid.CreateVersion7(start), GymId = gym.GymId, Name = "Annual", PriceCents = 149000, Interval = "year", CreatedAt = start },
        };
        db.MembershipPlans.AddRange(plans);

        var classes = new List<ClassSchedule>();
        (string Title, string Discipline, int Day, int Hour)[] schedule =
            [("Fundamentals Gi", "gi", 1, 18), ("Advanced No-Gi", "no-gi", 2, 18), ("Open Mat", "open-mat", 6, 10), ("Competition Class", "no-gi", 4, 19), ("Kids BJJ", "gi", 3, 16)];
        foreach (var (title, discipline, day, hour) in schedule)
        {
            var c = new ClassSchedule
            {
                Id = Guid.CreateVersion7(start), GymId = gym.GymId, Title = title, Discipline = discipline, DayOfWeek = day,
                StartTime = new TimeOnly(hour, 0), DurationMins = 90, CreatedAt = At(0, 9),
            };
            ClassService.AddClass(db, c);
            classes.Add(c);
        }

        var members = new List<Member>();
        for (var i = 0; i < 56; i++)
        {
            var joined = At(random.Next(0, 28), 8 + random.Next(10));
            var first = FirstNames[i % FirstNames.Length];
            var last = LastNames[(i * 7 + i / FirstNames.Length) % LastNames.Length];
            var member = new Member
            {
                Id = Guid.CreateVersion7(joined), GymId = gym.GymId, UserId = $"user_demo{i:D3}", Name = $"{first} {last}",
                Email = $"{first.ToLowerInvariant()}.{last.ToLowerInvariant()}{i}@example.com", Phone = $"+1555{2000000 + i:D7}",
                Role = i < 6 ? MemberRoles.Coach : MemberRoles.Member, JoinedAt = joined,
            };
            db.Members.Add(member);
            db.AddEvent(gym.GymId, EventCatalog.MemberJoined, new { user_id = member.UserId, member_id = member.Id }, joined);
            members.Add(member);

            if (member.Role == MemberRoles.Member)
            {
                var plan = plans[random.Next(plans.Length)];
                MembershipService.ActivateMembership(db, gym.GymId, member.UserId, plan.Id, joined);
                var failed = random.Next(10) == 0;
                PaymentService.AddPayment(db, new Payment
                {
                    Id = Guid.CreateVersion7(joined), GymId = gym.GymId, UserId = member.UserId, PlanId = plan.Id, AmountCents = plan.PriceCents,
                    Currency = "usd", Status = failed ? PaymentStatuses.Failed : PaymentStatuses.Paid,
                    FailureReason = failed ? "card_declined" : null, CreatedAt = joined.AddMinutes(1), RecordedAt = joined.AddMinutes(1),
                });
            }
        }

        var regulars = members.Where(m => m.Role == MemberRoles.Member).ToList();
        for (var day = 0; day < 30; day++)
        {
            foreach (var m in regulars.Where(m => m.JoinedAt < start.AddDays(day) && random.Next(4) == 0))
            {
                var at = At(day, 17 + random.Next(3));
                var cls = classes[random.Next(classes.Count)];
                AttendanceService.AddCheckIn(db, gym.GymId, m.UserId, random.Next(3) == 0 ? null : cls.Id,
                    random.Next(15) == 0 ? AttendanceStatuses.Pending : AttendanceStatuses.Approved, "kiosk", at);
                TrainingSessionService.AddSession(db, new TrainingSession
                {
                    Id = Guid.CreateVersion7(at), GymId = gym.GymId, UserId = m.UserId, SessionType = SessionTypes[random.Next(SessionTypes.Length)],
                    Date = DateOnly.FromDateTime(at), DurationMins = 60 + 30 * random.Next(3), CreatedAt = at.AddHours(2),
                });
            }
        }

        string[] sources = ["website", "instagram", "walk-in", "referral", "zapier"];
        for (var i = 0; i < 12; i++)
        {
            var at = At(random.Next(30), 12);
            LeadService.AddLead(db, gym.GymId, new CreateLeadRequest(FirstNames[(i * 5) % FirstNames.Length], LastNames[i % LastNames.Length],
                $"lead{i}@example.com", null, sources[i % sources.Length]), "manual", at);
        }

        var signer = regulars[0];
        var signedAt = signer.JoinedAt.AddMinutes(5);
        var contract = new Contract { Id = Guid.CreateVersion7(signedAt), GymId = gym.GymId, UserId = signer.UserId, Title = "Membership Agreement 2026", SignedAt = signedAt };
        db.Contracts.Add(contract);
        db.AddEvent(gym.GymId, EventCatalog.ContractSigned, new { contract_id = contract.Id, user_id = contract.UserId }, signedAt);

        // The seed is history: its events are already "dispatched", so a webhook created later does not receive a month of backlog.
        foreach (var entry in db.ChangeTracker.Entries<OutboxEvent>())
        {
            entry.Entity.DispatchedAt = today;
        }
        AddWebhookHistory(gym.GymId, start, random);
        await db.SaveChangesAsync(ct);
        await AddUsedKeyAsync(gym.GymId, today, ct);
        return new DemoGym(gym.GymId, GymName, OwnerEmail, OwnerPassword, Created: true);
    }

    /// <summary>
    /// A webhook that received the seed's latest member and payment events, as rows the delivery engine would have
    /// written: most delivered at once, some after a failed first attempt (retried), and two undeliverable after
    /// the whole retry schedule. Nothing is queued, so the engine sends nothing on the demo's behalf.
    /// </summary>
    private void AddWebhookHistory(Guid gymId, DateTime start, Random random)
    {
        string[] types = [EventCatalog.MemberJoined, EventCatalog.PaymentReceived, EventCatalog.PaymentFailed];
        var hook = new WebhookSubscription
        {
            Id = Guid.CreateVersion7(start), GymId = gymId, Url = WebhookUrl, Events = [.. types], IsActive = true, CreatedAt = start, UpdatedAt = start,
            SecretProtected = protector.Protect(WebhookSigner.NewSecret()),
        };
        db.WebhookSubscriptions.Add(hook);
        var events = db.ChangeTracker.Entries<OutboxEvent>().Select(e => e.Entity).Where(e => types.Contains(e.Type))
            .OrderBy(e => e.OccurredAt).TakeLast(24).ToList();
        TimeSpan[] retries = [TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(30), TimeSpan.FromHours(2)];
        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i];
            // The last one is delivered, so the webhook is healthy now; two earlier ones failed for good.
            var outcome = i == events.Count - 1 ? "delivered" : i % 11 == 4 ? "failed" : i % 4 == 1 ? "retried" : "delivered";
            var delivery = new WebhookDelivery
            {
                Id = Guid.CreateVersion7(e.OccurredAt), GymId = gymId, SubscriptionId = hook.Id, EventId = e.Id, Event = e.Type,
                Status = outcome == "failed" ? DeliveryStatus.Undeliverable : DeliveryStatus.Delivered, CreatedAt = e.OccurredAt,
            };
            var at = e.OccurredAt.AddSeconds(1);
            var attempts = outcome switch { "failed" => 1 + retries.Length, "retried" => 2, _ => 1 };
            for (var n = 1; n <= attempts; n++)
            {
                var ok = outcome != "failed" && n == attempts;
                var timeout = !ok && outcome == "failed" && n % 2 == 0;
                var attempt = new WebhookAttempt
                {
                    Id = Guid.CreateVersion7(at), GymId = gymId, DeliveryId = delivery.Id, Number = n, AttemptedAt = at, Trigger = n == 1 ? DeliveryMetrics.Triggers.Initial : DeliveryMetrics.Triggers.Retry,
                    StatusCode = ok ? 200 : timeout ? null : 503, DurationMs = ok ? 80 + random.Next(400) : timeout ? 10_000 : 30 + random.Next(100),
                    Error = ok ? null : timeout ? "Timed out after 10 s" : "HTTP 503",
                    ResponseBody = ok ? """{"status":"success"}""" : timeout ? null : "Service Unavailable",
                };
                db.WebhookAttempts.Add(attempt);
                (delivery.AttemptCount, delivery.LastAttemptAt, delivery.LastStatusCode, delivery.LastError) = (n, at, attempt.StatusCode, attempt.Error);
                if (n <= retries.Length)
                {
                    at += retries[n - 1];
                }
            }
            db.WebhookDeliveries.Add(delivery);
        }
    }

    /// <summary>A Read/Write key for Zapier that was used a few minutes ago, as a connected Zap's polling would.</summary>
    private async Task AddUsedKeyAsync(Guid gymId, DateTime now, CancellationToken ct)
    {
        var (key, error) = await keys.CreateAsync(gymId, "Zapier (demo)", [Infrastructure.Auth.Scopes.Read, Infrastructure.Auth.Scopes.Write], null, ct);
        if (key is null)
        {
            throw new InvalidOperationException(error);
        }
        var usedAt = now.AddMinutes(-7);
        await db.ApiKeys.Where(k => k.Id == key.Id).ExecuteUpdateAsync(k => k.SetProperty(x => x.LastUsedAt, usedAt), ct);
    }
}
