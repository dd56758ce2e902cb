using System.Text;
using Gymwire.Features.Exports;
using Gymwire.Features.Memberships;
using Gymwire.Features.Payments;

namespace Gymwire.Features.Stripe;

public sealed record StripeMapping(string Outcome, string Detail, string? CustomerId = null, string? Email = null);

/// <summary>
/// Turns a verified Stripe event into Gymwire records and their events, through the same helpers the API uses
/// (<see cref="PaymentService.AddPayment"/>, <see cref="MembershipService.ActivateMembership"/>…), so a payment
/// from Stripe is indistinguishable from one recorded through the API. Fields are read from the raw JSON rather than
/// Stripe.net's typed objects because webhook payloads follow the endpoint's API version, not the library's.
/// Everything is added to the caller's unit of work; nothing is saved here.
/// </summary>
public sealed class StripeEventMapper(GymwireDbContext db)
{
    /// <summary>
    /// The events the owner chooses for the gym's endpoint in Stripe, as the Payments page and tile list them: every
    /// type handled but <c>invoice.payment_succeeded</c>, which Stripe sends beside <c>invoice.paid</c> for the same payment.
    /// </summary>
    public static readonly string[] SubscribedTypes =
    [
        "invoice.paid", "invoice_payment.paid", "invoice.payment_failed", "charge.refunded",
        "customer.created", "customer.updated", "customer.subscription.created", "customer.subscription.deleted",
    ];

    /// <summary>The types <see cref="MapAsync"/> handles; it records any other as ignored (<c>ignored_unknown_type</c>).</summary>
    public static readonly string[] HandledTypes = [.. SubscribedTypes, "invoice.payment_succeeded"];

    /// <summary>
    /// Maps an event's object. <paramref name="now"/> is when Gymwire records it; <paramref name="created"/> the event's
    /// own time, when what it tells happened (a payment's or refund's date in the accounting exports, a membership's
    /// start or end when the subscription does not say).
    /// </summary>
    public Task<StripeMapping> MapAsync(Guid gymId, string type, JsonElement obj, DateTime now, DateTime created, CancellationToken ct) => type switch
    {
        "invoice.paid" or "invoice.payment_succeeded" => InvoicePaidAsync(gymId, obj, now, created, ct),
        "invoice.payment_failed" => InvoiceFailedAsync(gymId, obj, now, created, ct),
        "invoice_payment.paid" => InvoicePaymentPaidAsync(gymId, obj, now, ct),
        "charge.refunded" => ChargeRefundedAsync(gymId, obj, now, created, ct),
        "customer.created" or "customer.updated" => CustomerAsync(gymId, obj, now, ct),
        "customer.subscription.created" => SubscriptionCreatedAsync(gymId, obj, now, created, ct),
        "customer.subscription.deleted" => SubscriptionDeletedAsync(gymId, obj, now, created, ct),
        _ => Task.FromResult(new StripeMapping(StripeOutcomes.IgnoredUnknownType,
            $"Gymwire does not handle '{type}' events; it was recorded and nothing else changed.", CustomerOf(obj), EmailOf(obj))),
    };

    private async Task<StripeMapping> InvoicePaidAsync(Guid gymId, JsonElement invoice, DateTime now, DateTime created, CancellationToken ct)
    {
        var invoiceId = Str(invoice, "id") ?? "";
        var customer = CustomerOf(invoice);
        var email = EmailOf(invoice);
        // Stripe sends both invoice.paid and invoice.payment_succeeded for one payment (different event ids).
        if (await FindLinkAsync(gymId, StripeLinkKinds.Payment, invoiceId, ct) is not null)
        {
            return new(StripeOutcomes.AlreadyRecorded, $"Invoice {invoiceId} is already recorded as a payment.", customer, email);
        }
        var amount = Long(invoice, "amount_paid") ?? 0;
        var currency = (Str(invoice, "currency") ?? "usd").ToLowerInvariant();
        if (amount <= 0)
        {
            return new(StripeOutcomes.Ignored, $"Invoice {invoiceId} was paid with a zero amount (a trial or a credit); no payment recorded.", customer, email);
        }
        if (TooLarge(amount) is { } tooLarge)
        {
            return new(StripeOutcomes.Ignored, $"Invoice {invoiceId} was paid {tooLarge}; no payment recorded.", customer, email);
        }
        // Stripe allows ids longer than the link's columns; PostgreSQL would refuse such a link on every retry.
        if (PaymentRefsOf(invoice).Append(invoiceId).Any(i => i.Length > MaxLength<StripeLink>(nameof(StripeLink.StripeId))))
        {
            return new(StripeOutcomes.Ignored, $"Invoice {invoiceId} names an id longer than Gymwire keeps; no payment recorded.", customer, email);
        }
        var userId = await ResolveMemberAsync(gymId, invoice, ct);
        if (userId is null)
        {
            return UnknownMember($"Invoice {invoiceId} for {Money(amount, currency)}", customer, email);
        }
        var payment = new Payment
        {
            Id = Guid.CreateVersion7(now), GymId = gymId, UserId = userId, PlanId = await PlanOfInvoiceAsync(gymId, invoice, ct),
            AmountCents = (int)amount, Currency = currency, Status = PaymentStatuses.Paid, CreatedAt = UnixTime(invoice, now, "status_transitions", "paid_at") ?? created,
            RecordedAt = now,
        };
        PaymentService.AddPayment(db, payment);
        AddLink(gymId, StripeLinkKinds.Payment, invoiceId, payment.Id.ToString(), now);
        // A payment intent or charge can pay several invoices; a refund of it stays matched to the payment it paid first.
        var elsewhere = new List<string>();
        foreach (var paymentRef in PaymentRefsOf(invoice))
        {
            var known = await FindLinkAsync(gymId, StripeLinkKinds.Payment, paymentRef, ct);
            if (known is null)
            {
                AddLink(gymId, StripeLinkKinds.Payment, paymentRef, payment.Id.ToString(), now);
            }
            else if (known != payment.Id.ToString())
            {
                elsewhere.Add($"{paymentRef} (already tied to payment {known}, which a refund of it refunds)");
            }
        }
        var conflicts = elsewhere.Count == 0 ? "" : $" Not linked: {string.Join(", ", elsewhere)}.";
        if (customer is not null)
        {
            await LearnCustomerAsync(gymId, customer, userId, now, ct);
        }
        // On 2025-03-31.basil a refund names the payment intent or charge, which invoice_payment.paid tied to this invoice.
        var paidBy = await StripeIdsLinkedToAsync(gymId, StripeLinkKinds.Invoice, invoiceId, ct);
        var refunds = await ApplyKeptRefundsAsync(gymId, [invoiceId, .. PaymentRefsOf(invoice), .. paidBy], now, ct);
        return new(StripeOutcomes.Recorded, $"Invoice {invoiceId}: payment of {Money(amount, currency)} recorded for {userId}.{conflicts}{refunds}", customer, email);
    }

    private async Task<StripeMapping> InvoiceFailedAsync(Guid gymId, JsonElement invoice, DateTime now, DateTime created, CancellationToken ct)
    {
        var invoiceId = Str(invoice, "id") ?? "";
        var customer = CustomerOf(invoice);
        var email = EmailOf(invoice);
        var amount = Long(invoice, "amount_due") ?? 0;
        var currency = (Str(invoice, "currency") ?? "usd").ToLowerInvariant();
        if (TooLarge(amount) is { } tooLarge)
        {
            return new(StripeOutcomes.Ignored, $"A payment of invoice {invoiceId} failed: {tooLarge}; no payment recorded.", customer, email);
        }
        var userId = await ResolveMemberAsync(gymId, invoice, ct);
        if (userId is null)
        {
            return UnknownMember($"Failed payment of invoice {invoiceId} for {Money(amount, currency)}", customer, email);
        }
        var reason = Str(invoice, "last_finalization_error", "code") ?? Str(invoice, "last_payment_error", "code") ?? "payment_failed";
        var payment = new Payment
        {
            Id = Guid.CreateVersion7(now), GymId = gymId, UserId = userId, PlanId = await PlanOfInvoiceAsync(gymId, invoice, ct),
            AmountCents = (int)Math.Max(amount, 0), Currency = currency, Status = PaymentStatuses.Failed, FailureReason = reason, CreatedAt = created,
            RecordedAt = now,
        };
        PaymentService.AddPayment(db, payment);
        return new(StripeOutcomes.Recorded, $"Invoice {invoiceId}: failed payment of {Money(amount, currency)} recorded for {userId}.", customer, email);
    }

    /// <summary>
    /// Remembers which invoice the payment intent or charge of an invoice payment paid, so that a refund, which names
    /// only those, finds the invoice's payment. It needs nothing else to have arrived: the invoice's payment is looked
    /// up when the refund comes, so this event and <c>invoice.paid</c> may come in either order, or together.
    /// </summary>
    private async Task<StripeMapping> InvoicePaymentPaidAsync(Guid gymId, JsonElement invoicePayment, DateTime now, CancellationToken ct)
    {
        var id = Str(invoicePayment, "id") ?? "";
        var invoiceId = IdOf(invoicePayment, "invoice");
        var paidBy = InvoicePaymentRefsOf(invoicePayment).ToList();
        if (invoiceId is null || paidBy.Count == 0)
        {
            return new(StripeOutcomes.Ignored,
                $"Invoice payment {id} names no invoice, or no payment intent or charge (it was paid outside Stripe, say); a refund could not name it, so nothing was linked.");
        }
        // Stripe allows ids longer than the link's columns; PostgreSQL would refuse such a link on every retry.
        if (invoiceId.Length > MaxLength<StripeLink>(nameof(StripeLink.TargetId)) || paidBy.Any(r => r.Length > MaxLength<StripeLink>(nameof(StripeLink.StripeId))))
        {
            return new(StripeOutcomes.Ignored, $"Invoice payment {id} has an id longer than Gymwire keeps; nothing was linked.");
        }
        var added = new List<string>();
        var elsewhere = new List<string>();
        foreach (var paymentRef in paidBy)
        {
            var known = await FindLinkAsync(gymId, StripeLinkKinds.Invoice, paymentRef, ct);
            if (known is null)
            {
                AddLink(gymId, StripeLinkKinds.Invoice, paymentRef, invoiceId, now);
                added.Add(paymentRef);
            }
            else if (known != invoiceId)
            {
                elsewhere.Add($"{paymentRef} (already tied to invoice {known}, whose payment a refund of it finds)");
            }
        }
        var conflicts = elsewhere.Count == 0 ? "" : $" Not linked: {string.Join(", ", elsewhere)}.";
        if (added.Count == 0)
        {
            return elsewhere.Count == 0
                ? new(StripeOutcomes.AlreadyRecorded, $"Invoice payment {id}: {string.Join(" and ", paidBy)} already tied to invoice {invoiceId}.")
                : new(StripeOutcomes.Ignored, $"Invoice payment {id} for invoice {invoiceId}: nothing linked.{conflicts}");
        }
        var payment = await FindLinkAsync(gymId, StripeLinkKinds.Payment, invoiceId, ct);
        var then = payment is null
            ? "no payment is recorded from that invoice yet; a refund will find the one its invoice.paid records"
            : $"a refund will refund payment {payment}";
        var refunds = payment is null ? "" : await ApplyKeptRefundsAsync(gymId, added, now, ct);
        return new(StripeOutcomes.Recorded, $"Invoice payment {id}: {string.Join(" and ", added)} paid invoice {invoiceId}; {then}.{conflicts}{refunds}");
    }

    private async Task<StripeMapping> ChargeRefundedAsync(Guid gymId, JsonElement charge, DateTime now, DateTime created, CancellationToken ct)
    {
        var chargeId = Str(charge, "id") ?? "";
        var customer = CustomerOf(charge);
        var email = EmailOf(charge);
        var paymentId = await PaymentOfChargeAsync(gymId, charge, chargeId, ct);
        // The payment may be one this unit of work is adding (a kept refund applied as its invoice.paid records it).
        var payment = paymentId is null ? null
            : db.Payments.Local.FirstOrDefault(p => p.Id == paymentId && p.GymId == gymId)
              ?? await db.Payments.FirstOrDefaultAsync(p => p.Id == paymentId && p.GymId == gymId, ct);
        if (payment is null)
        {
            return new(StripeOutcomes.UnknownPayment,
                $"Charge {chargeId} was refunded, but Gymwire has no payment recorded from it; nothing changed. " +
                "(From Stripe API version 2025-03-31.basil, a charge is tied to its invoice only by invoice_payment.paid: the endpoint needs that event too.)",
                customer, email);
        }
        if (payment.Status == PaymentStatuses.Refunded)
        {
            return new(StripeOutcomes.AlreadyRecorded, $"Charge {chargeId}: payment {payment.Id} is already refunded.", customer, email);
        }
        if (charge.TryGetProperty("refunded", out var full) && full.ValueKind == JsonValueKind.False)
        {
            return new(StripeOutcomes.Ignored,
                $"Charge {chargeId} was partially refunded ({Money(Long(charge, "amount_refunded") ?? 0, payment.Currency)}); Gymwire records full refunds only.", customer, email);
        }
        if (payment.Status != PaymentStatuses.Paid)
        {
            return new(StripeOutcomes.Ignored, $"Charge {chargeId}: payment {payment.Id} is {payment.Status}, not paid; nothing changed.", customer, email);
        }
        PaymentService.RefundPayment(db, payment, now, refundedAt: created);
        return new(StripeOutcomes.Recorded, $"Charge {chargeId}: payment {payment.Id} refunded.", customer, email);
    }

    /// <summary>
    /// Applies the gym's kept <c>charge.refunded</c> events that found no payment (Stripe may send a refund before the
    /// invoice it refunds, and does not send it again) and that name one of <paramref name="stripeIds"/>, now that a
    /// link lets them find it; each kept event then records what it did. Returns words to add to the linking event's detail.
    /// </summary>
    private async Task<string> ApplyKeptRefundsAsync(Guid gymId, IReadOnlyCollection<string> stripeIds, DateTime now, CancellationToken ct)
    {
        var applied = new List<string>();
        foreach (var stripeId in stripeIds.Where(i => i.Length > 0).Distinct(StringComparer.Ordinal))
        {
            // Narrowed in the query by the id's text in the payload; whether the refund is this payment's is the mapping's to say.
            var quoted = $"\"{stripeId}\"";
            var kept = await db.StripeEvents.Where(e => e.GymId == gymId && e.Type == "charge.refunded" && e.Outcome == StripeOutcomes.UnknownPayment
                && e.Payload.Contains(quoted)).OrderBy(e => e.ReceivedAt).ToListAsync(ct);
            foreach (var record in kept.Where(r => r.Outcome == StripeOutcomes.UnknownPayment))
            {
                using var document = JsonDocument.Parse(record.Payload);
                if (DataObject(document.RootElement) is not { } charge)
                {
                    continue;
                }
                var mapping = await ChargeRefundedAsync(gymId, charge, now, CreatedOf(document.RootElement, now), ct);
                if (mapping.Outcome != StripeOutcomes.UnknownPayment)
                {
                    record.Outcome = mapping.Outcome;
                    record.Detail = ColumnText.Fit($"{mapping.Detail} (Applied when the payment it refunds arrived.)", MaxLength<StripeEventRecord>(nameof(StripeEventRecord.Detail)));
                    applied.Add(record.StripeEventId);
                }
            }
        }
        return applied.Count == 0 ? "" : $" Refund events {string.Join(", ", applied)}, received before it, applied.";
    }

    /// <summary>An event's <c>created</c>, or <paramref name="now"/> when it has none.</summary>
    public static DateTime CreatedOf(JsonElement stripeEvent, DateTime now) => UnixTime(stripeEvent, now, "created") ?? now;

    /// <summary>
    /// A Unix time (seconds) at a path, or null. One after <paramref name="now"/> (Stripe's clock ahead of ours) is
    /// taken as now: a payment or membership is not dated in the future.
    /// </summary>
    private static DateTime? UnixTime(JsonElement obj, DateTime now, params string[] path)
    {
        if (At(obj, path) is not { ValueKind: JsonValueKind.Number } value || !value.TryGetInt64(out var seconds)
            || seconds <= 0 || seconds > DateTimeOffset.MaxValue.ToUnixTimeSeconds())
        {
            return null;
        }
        var at = DateTimeOffset.FromUnixTimeSeconds(seconds).UtcDateTime;
        return at > now ? now : at;
    }

    /// <summary>The <c>data.object</c> of a Stripe event, or null when it has none.</summary>
    public static JsonElement? DataObject(JsonElement stripeEvent) =>
        stripeEvent.ValueKind == JsonValueKind.Object && stripeEvent.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object
        && data.TryGetProperty("object", out var obj) && obj.ValueKind == JsonValueKind.Object ? obj : null;

    /// <summary>The Stripe ids linked, with <paramref name="kind"/>, to <paramref name="targetId"/>, saved or pending.</summary>
    private async Task<List<string>> StripeIdsLinkedToAsync(Guid gymId, string kind, string targetId, CancellationToken ct)
    {
        var saved = await db.StripeLinks.AsNoTracking().Where(l => l.GymId == gymId && l.Kind == kind && l.TargetId == targetId).Select(l => l.StripeId).ToListAsync(ct);
        var pending = db.ChangeTracker.Entries<StripeLink>().Select(e => e.Entity).Where(l => l.GymId == gymId && l.Kind == kind && l.TargetId == targetId).Select(l => l.StripeId);
        return [.. saved.Union(pending, StringComparer.Ordinal)];
    }

    /// <summary>
    /// The payment a refunded charge paid: linked from its payment intent, itself or its invoice (before API version
    /// 2025-03-31.basil the invoice names the first two and the charge its invoice), or else through the invoice an
    /// <c>invoice_payment.paid</c> tied the payment intent or charge to.
    /// </summary>
    private async Task<Guid?> PaymentOfChargeAsync(Guid gymId, JsonElement charge, string chargeId, CancellationToken ct)
    {
        var paidBy = new[] { Str(charge, "payment_intent"), chargeId };
        foreach (var candidate in paidBy.Append(Str(charge, "invoice")))
        {
            if (candidate is { Length: > 0 } && await FindLinkAsync(gymId, StripeLinkKinds.Payment, candidate, ct) is { } link)
            {
                return Guid.Parse(link);
            }
        }
        foreach (var candidate in paidBy)
        {
            if (candidate is { Length: > 0 } && await FindLinkAsync(gymId, StripeLinkKinds.Invoice, candidate, ct) is { } invoiceId
                && await FindLinkAsync(gymId, StripeLinkKinds.Payment, invoiceId, ct) is { } link)
            {
                return Guid.Parse(link);
            }
        }
        return null;
    }

    private async Task<StripeMapping> CustomerAsync(Guid gymId, JsonElement customerObj, DateTime now, CancellationToken ct)
    {
        var customer = Str(customerObj, "id") ?? "";
        var email = Str(customerObj, "email");
        var userId = await ResolveMemberAsync(gymId, customerObj, ct, learnedFirst: false);
        if (userId is null)
        {
            return UnknownMember($"Customer {customer}", customer, email);
        }
        await LearnCustomerAsync(gymId, customer, userId, now, ct);
        return new(StripeOutcomes.Recorded, $"Customer {customer} is member {userId}.", customer, email);
    }

    private async Task<StripeMapping> SubscriptionCreatedAsync(Guid gymId, JsonElement subscription, DateTime now, DateTime created, CancellationToken ct)
    {
        var subscriptionId = Str(subscription, "id") ?? "";
        var customer = CustomerOf(subscription);
        if (await FindLinkAsync(gymId, StripeLinkKinds.Membership, subscriptionId, ct) is not null)
        {
            return new(StripeOutcomes.AlreadyRecorded, $"Subscription {subscriptionId} is already a membership.", customer);
        }
        var userId = await ResolveMemberAsync(gymId, subscription, ct);
        if (userId is null)
        {
            return UnknownMember($"Subscription {subscriptionId}", customer, null);
        }
        var planId = await PlanOfSubscriptionAsync(gymId, subscription, now, ct);
        // The subscription's start (which Stripe allows to be backdated), else the event's time.
        var membership = MembershipService.ActivateMembership(db, gymId, userId, planId, now, startedAt: UnixTime(subscription, now, "start_date") ?? created);
        AddLink(gymId, StripeLinkKinds.Membership, subscriptionId, membership.Id.ToString(), now);
        if (customer is not null)
        {
            await LearnCustomerAsync(gymId, customer, userId, now, ct);
        }
        return new(StripeOutcomes.Recorded, $"Subscription {subscriptionId}: membership {membership.Id} activated for {userId}.", customer);
    }

    private async Task<StripeMapping> SubscriptionDeletedAsync(Guid gymId, JsonElement subscription, DateTime now, DateTime created, CancellationToken ct)
    {
        var subscriptionId = Str(subscription, "id") ?? "";
        var customer = CustomerOf(subscription);
        var link = await FindLinkAsync(gymId, StripeLinkKinds.Membership, subscriptionId, ct);
        var membershipId = link is null ? (Guid?)null : Guid.Parse(link);
        var membership = membershipId is null ? null : await db.Memberships.FirstOrDefaultAsync(m => m.Id == membershipId && m.GymId == gymId, ct);
        if (membership is null)
        {
            return new(StripeOutcomes.UnknownSubscription,
                $"Subscription {subscriptionId} was canceled, but Gymwire has no membership from it; nothing changed.", customer);
        }
        if (membership.Status == MembershipStatuses.Canceled)
        {
            return new(StripeOutcomes.AlreadyRecorded, $"Subscription {subscriptionId}: membership {membership.Id} is already canceled.", customer);
        }
        // When it ended (a cancellation at the period's end ends then, not when it was asked for), else the event's time.
        MembershipService.CancelMembership(db, membership, now, canceledAt: UnixTime(subscription, now, "ended_at") ?? created);
        return new(StripeOutcomes.Recorded, $"Subscription {subscriptionId}: membership {membership.Id} canceled.", customer);
    }

    /// <summary>
    /// The member a Stripe object belongs to: <c>metadata.user_id</c> (on the object or its subscription details), a
    /// customer Gymwire has already matched, or the customer's email matching a member's email.
    /// </summary>
    private async Task<string?> ResolveMemberAsync(Guid gymId, JsonElement obj, CancellationToken ct, bool learnedFirst = true)
    {
        var candidates = new[]
        {
            Str(obj, "metadata", "user_id"),
            Str(obj, "subscription_details", "metadata", "user_id"),
            Str(obj, "parent", "subscription_details", "metadata", "user_id"),
            Str(obj, "customer", "metadata", "user_id"),
        };
        foreach (var userId in candidates)
        {
            if (userId is not null && await db.Members.AnyAsync(m => m.GymId == gymId && m.UserId == userId, ct))
            {
                return userId;
            }
        }
        if (learnedFirst && CustomerOf(obj) is { } customer && await FindLinkAsync(gymId, StripeLinkKinds.Customer, customer, ct) is { } learned)
        {
            return learned;
        }
        if (EmailOf(obj) is { } email)
        {
            // The stores' lower() agree on A-Z only (SQLite folds nothing else, PostgreSQL by its collation), so the query
            // matches ASCII letters ignoring case and any character elsewhere, and the match is made here as .NET ignores case.
            email = email.Trim();
            var pattern = new StringBuilder(email.Length + 8);
            foreach (var rune in email.EnumerateRunes())
            {
                // One '_' per character as the stores count them (a code point), not per UTF-16 unit.
                if (!rune.IsAscii)
                {
                    pattern.Append('_');
                    continue;
                }
                var c = (char)rune.Value;
                if (c is '%' or '_' or '\\')
                {
                    pattern.Append('\\');
                }
                pattern.Append(char.ToLowerInvariant(c));
            }
            var like = pattern.ToString();
            var sameEmail = await db.Members.Where(m => m.GymId == gymId && m.Email != null && EF.Functions.Like(m.Email.ToLower(), like, "\\"))
                .OrderBy(m => m.LeftAt != null).ThenByDescending(m => m.JoinedAt).Select(m => new { m.UserId, m.Email }).ToListAsync(ct);
            return sameEmail.FirstOrDefault(m => string.Equals(m.Email, email, StringComparison.OrdinalIgnoreCase))?.UserId;
        }
        return null;
    }

    private async Task LearnCustomerAsync(Guid gymId, string customer, string userId, DateTime now, CancellationToken ct)
    {
        var existing = await db.StripeLinks.FirstOrDefaultAsync(l => l.GymId == gymId && l.Kind == StripeLinkKinds.Customer && l.StripeId == customer, ct);
        if (existing is null)
        {
            AddLink(gymId, StripeLinkKinds.Customer, customer, userId, now);
        }
        else
        {
            existing.TargetId = userId;
        }
    }

    private async Task<Guid?> PlanOfInvoiceAsync(Guid gymId, JsonElement invoice, CancellationToken ct)
    {
        var subscription = Str(invoice, "subscription") ?? Str(invoice, "parent", "subscription_details", "subscription");
        if (subscription is null || await FindLinkAsync(gymId, StripeLinkKinds.Membership, subscription, ct) is not { } membership)
        {
            return null;
        }
        var membershipId = Guid.Parse(membership);
        return await db.Memberships.Where(m => m.Id == membershipId && m.GymId == gymId).Select(m => (Guid?)m.PlanId).FirstOrDefaultAsync(ct);
    }

    /// <summary>
    /// The plan of a subscription: <c>metadata.plan_id</c> naming a Gymwire plan, the plan made earlier for the same
    /// Stripe price, or a new plan named after the price (so a membership always has one, and the owner can see why).
    /// </summary>
    private async Task<Guid> PlanOfSubscriptionAsync(Guid gymId, JsonElement subscription, DateTime now, CancellationToken ct)
    {
        if (Guid.TryParse(Str(subscription, "metadata", "plan_id"), out var planId)
            && await db.MembershipPlans.AnyAsync(p => p.Id == planId && p.GymId == gymId, ct))
        {
            return planId;
        }
        var price = FirstItemPrice(subscription);
        var priceId = price is { } p ? Str(p, "id") ?? "unknown" : "unknown";
        if (await FindLinkAsync(gymId, StripeLinkKinds.Plan, priceId, ct) is { } known)
        {
            return Guid.Parse(known);
        }
        var added = db.ChangeTracker.Entries<StripeLink>().Select(e => e.Entity)
            .FirstOrDefault(l => l.GymId == gymId && l.Kind == StripeLinkKinds.Plan && l.StripeId == priceId);
        if (added is not null)
        {
            return Guid.Parse(added.TargetId);
        }
        var interval = price is { } pr ? Str(pr, "recurring", "interval") : null;
        var plan = new MembershipPlan
        {
            Id = Guid.CreateVersion7(now), GymId = gymId,
            Name = ColumnText.Fit($"Stripe {(price is { } n ? Str(n, "nickname") : null) ?? priceId}", MaxLength<MembershipPlan>(nameof(MembershipPlan.Name))),
            // A price beyond what a plan stores is left 0 (unknown) rather than cut to a wrong one.
            PriceCents = price is { } a && Long(a, "unit_amount") is { } unit && unit > 0 && TooLarge(unit) is null ? (int)unit : 0,
            Interval = interval is "year" ? "year" : interval is null ? "once" : "month",
            CreatedAt = now,
        };
        db.MembershipPlans.Add(plan);
        AddLink(gymId, StripeLinkKinds.Plan, priceId, plan.Id.ToString(), now);
        return plan.Id;
    }

    /// <summary>A column's length in the model: Stripe's values can be longer, and PostgreSQL would refuse them on every retry.</summary>
    private int MaxLength<TEntity>(string property) =>
        db.Model.FindEntityType(typeof(TEntity))!.FindProperty(property)!.GetMaxLength() ?? int.MaxValue;

    private static JsonElement? FirstItemPrice(JsonElement subscription)
    {
        if (subscription.TryGetProperty("items", out var items) && items.ValueKind == JsonValueKind.Object
            && items.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Array && data.GetArrayLength() > 0
            && data[0].TryGetProperty("price", out var price) && price.ValueKind == JsonValueKind.Object)
        {
            return price;
        }
        return subscription.TryGetProperty("plan", out var plan) && plan.ValueKind == JsonValueKind.Object ? plan : null;
    }

    private async Task<string?> FindLinkAsync(Guid gymId, string kind, string stripeId, CancellationToken ct)
    {
        var pending = db.ChangeTracker.Entries<StripeLink>().Select(e => e.Entity)
            .FirstOrDefault(l => l.GymId == gymId && l.Kind == kind && l.StripeId == stripeId);
        if (pending is not null)
        {
            return pending.TargetId;
        }
        return await db.StripeLinks.AsNoTracking().Where(l => l.GymId == gymId && l.Kind == kind && l.StripeId == stripeId)
            .Select(l => l.TargetId).FirstOrDefaultAsync(ct);
    }

    private void AddLink(Guid gymId, string kind, string stripeId, string targetId, DateTime now)
    {
        if (stripeId.Length == 0)
        {
            return;
        }
        db.StripeLinks.Add(new StripeLink { Id = Guid.CreateVersion7(now), GymId = gymId, Kind = kind, StripeId = stripeId, TargetId = targetId, CreatedAt = now });
    }

    private static StripeMapping UnknownMember(string what, string? customer, string? email) =>
        new(StripeOutcomes.UnknownMember,
            $"{what}: no member matches customer {customer ?? "(none)"}{(email is null ? "" : $" ({email})")}. " +
            "Add the member (same email) or set the customer's metadata user_id; the event is kept here.",
            customer, email);

    private static IEnumerable<string> PaymentRefsOf(JsonElement invoice)
    {
        foreach (var value in new[] { Str(invoice, "payment_intent"), Str(invoice, "charge") })
        {
            if (value is not null)
            {
                yield return value;
            }
        }
    }

    /// <summary>
    /// The payment intent or charge under <c>payment</c> (by its <c>type</c>, one of the two is set); preview API
    /// versions have put them at the top level instead, so those are read too.
    /// </summary>
    private static IEnumerable<string> InvoicePaymentRefsOf(JsonElement invoicePayment) =>
        new[]
        {
            IdOf(invoicePayment, "payment", "payment_intent"), IdOf(invoicePayment, "payment", "charge"),
            IdOf(invoicePayment, "payment_intent"), IdOf(invoicePayment, "charge"),
        }.OfType<string>().Distinct(StringComparer.Ordinal);

    /// <summary>An id at a path, or the id of the object there when Stripe expanded it.</summary>
    private static string? IdOf(JsonElement obj, params string[] path) => Str(obj, path) ?? Str(obj, [.. path, "id"]);

    private static string? CustomerOf(JsonElement obj) => IdOf(obj, "customer");

    private static string? EmailOf(JsonElement obj) =>
        Str(obj, "customer_email") ?? Str(obj, "email") ?? Str(obj, "receipt_email") ?? Str(obj, "billing_details", "email") ?? Str(obj, "customer", "email");

    private static string Money(long minorUnits, string currency) => CurrencyAmounts.Format(minorUnits, currency) + " " + currency;

    /// <summary>A string at a path, or null when any step is missing or not the right kind.</summary>
    private static string? Str(JsonElement obj, params string[] path) =>
        At(obj, path) is { ValueKind: JsonValueKind.String } value && value.GetString() is { Length: > 0 } s ? s : null;

    /// <summary>The value at a path, or null when any step is missing or not an object.</summary>
    private static JsonElement? At(JsonElement obj, string[] path)
    {
        var current = obj;
        foreach (var name in path)
        {
            if (current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(name, out current))
            {
                return null;
            }
        }
        return current;
    }

    private static long? Long(JsonElement obj, string name) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var i) ? i : null;

    /// <summary>
    /// Why an amount cannot be recorded, or null: Gymwire's amounts are 32-bit (the API, the events and the Zapier
    /// app's fields say so), and Stripe's go beyond that in currencies with large numbers (2,500,000,000 IDR).
    /// </summary>
    private static string? TooLarge(long amount) =>
        amount > int.MaxValue ? $"{amount.ToString(CultureInfo.InvariantCulture)} in the currency's smallest unit, an amount that exceeds what Gymwire stores (at most {int.MaxValue.ToString(CultureInfo.InvariantCulture)})" : null;
}
