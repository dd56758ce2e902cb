using System.Collections.Frozen;

namespace Gymwire.Features.Events;

/// <summary>One entry of the webhook event catalog.</summary>
/// <param name="Name">The name a subscriber sees in <c>event</c>.</param>
/// <param name="Description">What fires it.</param>
/// <param name="AliasOf">For GymPoint names, the canonical event they stand for; null for canonical names.</param>
/// <param name="SampleData">A realistic <c>data</c> object, used by test sends and the catalog endpoint.</param>
public sealed record EventType(string Name, string Description, string? AliasOf, IReadOnlyDictionary<string, object?> SampleData)
{
    public string Canonical => AliasOf ?? Name;
}

/// <summary>
/// The union of the CombatScore and GymPoint catalogs (docs/design.md). GymPoint names are aliases of
/// canonical events: a subscription naming an alias receives that name in <c>event</c>.
/// </summary>
public static class EventCatalog
{
    public const string MemberJoined = "member.joined";
    public const string MemberUpdated = "member.updated";
    public const string MemberLeft = "member.left";
    public const string MembershipActivated = "membership.activated";
    public const string MembershipCanceled = "membership.canceled";
    public const string PaymentReceived = "payment.received";
    public const string PaymentFailed = "payment.failed";
    public const string PaymentRefunded = "payment.refunded";
    public const string SessionLogged = "session.logged";
    public const string AttendanceCheckedIn = "attendance.checked_in";
    public const string ClassScheduled = "class.scheduled";
    public const string LeadCreated = "lead.created";
    public const string ContractSigned = "contract.signed";

    // Samples keep the contract's documented keys and values (docs/webhooks.md, "Event data"); the keys Gymwire adds (the records' ids, the currency)
    // follow them, with realistic values.
    private const string SampleMemberId = "0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e63";
    private const string SamplePaymentId = "0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e62";
    private static readonly Dictionary<string, object?> MemberSample = Data(("user_id", "user_xyz789"), ("member_id", SampleMemberId));
    private static readonly Dictionary<string, object?> PaymentReceivedSample =
        Data(("user_id", "user_xyz789"), ("plan_id", "plan_456"), ("amount_cents", 9900), ("payment_id", SamplePaymentId), ("currency", "usd"));
    private static readonly Dictionary<string, object?> CheckinSample = Data(("user_id", "user_xyz789"), ("attendance_id", "att_001"), ("status", "approved"),
        ("class_schedule_id", "0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e64"), ("source", "kiosk"));

    public static readonly IReadOnlyList<EventType> All =
    [
        new(MemberJoined, "A new member joins the gym.", null, MemberSample),
        new(MemberUpdated, "A member's profile is changed.", null, Data(("user_id", "user_xyz789"), ("changes", new[] { "email", "phone" }), ("member_id", SampleMemberId))),
        new(MemberLeft, "A member leaves or is removed from the gym.", null, MemberSample),
        new(MembershipActivated, "A membership plan becomes active.", null,
            Data(("user_id", "user_xyz789"), ("membership_id", "0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e60"), ("plan_id", "0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e61"))),
        new(MembershipCanceled, "A membership is canceled.", null,
            Data(("user_id", "user_xyz789"), ("membership_id", "0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e60"), ("plan_id", "0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e61"))),
        new(PaymentReceived, "A membership payment completes.", null, PaymentReceivedSample),
        new(PaymentFailed, "A payment attempt fails.", null,
            Data(("user_id", "user_xyz789"), ("plan_id", "plan_456"), ("amount_cents", 9900), ("payment_id", SamplePaymentId), ("failure_reason", "card_declined"), ("currency", "usd"))),
        new(PaymentRefunded, "A payment is refunded.", null,
            Data(("user_id", "user_xyz789"), ("plan_id", "plan_456"), ("amount_cents", 9900), ("payment_id", SamplePaymentId), ("currency", "usd"))),
        new(SessionLogged, "A member logs a training session.", null,
            Data(("user_id", "user_xyz789"), ("session_id", "sess_001"), ("session_type", "no-gi"), ("date", "2026-04-16"), ("duration_mins", 90))),
        new(AttendanceCheckedIn, "A member checks in (at the kiosk, or through the API's log_attendance or check-in endpoint).", null, CheckinSample),
        new(ClassScheduled, "A new class is added to the schedule.", null,
            Data(("schedule_id", "sched_001"), ("title", "Advanced No-Gi"), ("discipline", "no-gi"), ("day_of_week", 2), ("start_time", "18:00"))),
        new(LeadCreated, "A new lead is added (via API, Zapier, or manually).", null,
            Data(("lead_id", "lead_001"), ("first_name", "John"), ("last_name", "Doe"), ("source", "zapier"))),
        new(ContractSigned, "A member signs a membership contract.", null,
            Data(("contract_id", "contract_001"), ("user_id", "user_xyz789"))),
        new("member.created", "A new member is added (GymPoint name of member.joined).", MemberJoined, MemberSample),
        new("member.deleted", "A member is removed (GymPoint name of member.left).", MemberLeft, MemberSample),
        new("payment.successful", "A payment processes successfully (GymPoint name of payment.received).", PaymentReceived, PaymentReceivedSample),
        new("checkin.created", "A member checks in (GymPoint name of attendance.checked_in).", AttendanceCheckedIn, CheckinSample),
    ];

    public static readonly FrozenDictionary<string, EventType> ByName = All.ToFrozenDictionary(e => e.Name, StringComparer.Ordinal);

    public static IEnumerable<EventType> Canonical => All.Where(e => e.AliasOf is null);

    public static bool IsKnown(string name) => ByName.ContainsKey(name);

    private static Dictionary<string, object?> Data(params (string Key, object? Value)[] fields) =>
        fields.ToDictionary(f => f.Key, f => f.Value, StringComparer.Ordinal);
}
