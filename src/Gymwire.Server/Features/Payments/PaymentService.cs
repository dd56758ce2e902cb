namespace Gymwire.Features.Payments;

/// <summary>Recording and refunding payments: used by the API, the Stripe connector and the demo.</summary>
public static class PaymentService
{
    /// <summary>Adds a paid or failed payment and its event (at the time it was recorded) to the unit of work.</summary>
    public static void AddPayment(GymwireDbContext db, Payment payment)
    {
        db.Payments.Add(payment);
        if (payment.Status == PaymentStatuses.Failed)
        {
            db.AddEvent(payment.GymId, EventCatalog.PaymentFailed, new
            {
                user_id = payment.UserId, plan_id = payment.PlanId, amount_cents = payment.AmountCents,
                payment_id = payment.Id, failure_reason = payment.FailureReason, currency = payment.Currency,
            }, payment.RecordedAt);
        }
        else
        {
            db.AddEvent(payment.GymId, EventCatalog.PaymentReceived,
                new
                {
                    user_id = payment.UserId, plan_id = payment.PlanId, amount_cents = payment.AmountCents,
                    payment_id = payment.Id, currency = payment.Currency,
                }, payment.RecordedAt);
        }
    }

    /// <summary>
    /// Marks a paid payment refunded (at <paramref name="refundedAt"/>, Stripe's time for one from Stripe, else now) and
    /// adds <c>payment.refunded</c> to the unit of work.
    /// </summary>
    public static void RefundPayment(GymwireDbContext db, Payment payment, DateTime now, DateTime? refundedAt = null)
    {
        payment.Status = PaymentStatuses.Refunded;
        payment.RefundedAt = refundedAt ?? now;
        payment.RefundRecordedAt = now;
        db.AddEvent(payment.GymId, EventCatalog.PaymentRefunded,
            new
            {
                user_id = payment.UserId, plan_id = payment.PlanId, amount_cents = payment.AmountCents,
                payment_id = payment.Id, currency = payment.Currency,
            }, now);
    }
}
