'use strict';

const { baseUrl, throwForError } = require('../lib');
const { poll } = require('./polling');

// Instant triggers through REST hooks: subscribing creates a Gymwire webhook for one event with the
// connection's key; unsubscribing deactivates it (DELETE /api/gym/webhooks/{id}). Items have the
// webhook's shape: the event id as `id`, the event name, the event's `data` fields, and its timestamp.
// performList turns the polling trigger's items into that same shape, so sample data and live data
// map the same way in the Zap editor. `accepts` says which deliveries start the Zap (default: all).
const definitions = {
  member_joined: {
    event: 'member.joined', poll: 'new_member', noun: 'Member', label: 'Member Joined (Instant)',
    description: 'Triggers instantly when a new member joins your gym.',
    fromPoll: (m) => ({ id: m.id, event: 'member.joined', user_id: m.user_id, member_id: m.id, timestamp: m.joined_at }),
  },
  payment_received: {
    event: 'payment.received', poll: 'new_payment', noun: 'Payment', label: 'Payment Received (Instant)',
    description: 'Triggers instantly when a membership payment completes.',
    fromPoll: (p) => ({ id: p.id, event: 'payment.received', user_id: p.user_id, plan_id: null, amount_cents: p.amount_cents, payment_id: p.id, currency: null, timestamp: p.created_at }),
  },
  session_logged: {
    event: 'session.logged', poll: 'new_session', noun: 'Session', label: 'Session Logged (Instant)',
    description: 'Triggers instantly when a member logs a training session.',
    fromPoll: (s) => ({ id: s.id, event: 'session.logged', user_id: s.user_id, session_id: s.id, session_type: s.session_type, date: s.date, duration_mins: s.duration_mins, timestamp: null }),
  },
  checked_in: {
    event: 'attendance.checked_in', poll: 'new_checkin', noun: 'Check-in', label: 'Member Checked In (Instant)',
    description: 'Triggers instantly when a member checks in at the kiosk.',
    // Kiosk check-ins only, as the polling trigger (new_checkin): a check-in logged through the API
    // (log_attendance, source "api") would let a Zap that logs attendance trigger itself.
    accepts: (item) => item.source === 'kiosk',
    fromPoll: (c) => ({ id: c.id, event: 'attendance.checked_in', user_id: c.user_id, attendance_id: c.id, status: c.status, class_schedule_id: c.class_schedule_id ?? null, source: 'kiosk', timestamp: null }),
  },
};

const fromWebhook = (payload) => ({ id: payload.id, event: payload.event, ...payload.data, timestamp: payload.timestamp });

// A test send (the dashboard's Send test, POST /api/gym/webhooks/{id}/test) carries "test": true and sample data:
// acknowledged, it starts no Zap.
const itemsOf = (payload, accepts = () => true) => {
  if (payload.test === true) {
    return [];
  }
  const item = fromWebhook(payload);
  return accepts(item) ? [item] : [];
};

const trigger = (key, d) => ({
  key,
  noun: d.noun,
  display: { label: d.label, description: d.description },
  operation: {
    type: 'hook',
    performSubscribe: async (z, bundle) => {
      const response = await z.request({
        url: `${baseUrl(bundle)}/api/gym/webhooks`,
        method: 'POST',
        body: { url: bundle.targetUrl, events: [d.event] },
      });
      // The signing secret is shown once; the Zap does not need it (Zapier's hook URL is itself the secret).
      const { secret, ...subscription } = response.data;
      return subscription;
    },
    performUnsubscribe: async (z, bundle) => {
      const response = await z.request({
        url: `${baseUrl(bundle)}/api/gym/webhooks/${bundle.subscribeData.id}`,
        method: 'DELETE',
        skipThrowForStatus: true,
      });
      // 404: the webhook is gone (the owner deleted it) or another key made it. This key has nothing to turn off,
      // and an error would only tell the user the Zap failed to turn off.
      if (response.status === 404) {
        return {};
      }
      return throwForError(response, z).data || {};
    },
    perform: async (z, bundle) => itemsOf(bundle.cleanedRequest, d.accepts),
    performList: async (z, bundle) => (await poll(d.poll)(z, bundle)).map(d.fromPoll),
    sample: d.fromPoll({ id: '0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e60', user_id: 'user_xyz789', joined_at: '2026-04-16T14:30:00.000Z', created_at: '2026-04-16T14:30:00.000Z', amount_cents: 9900, session_type: 'no-gi', date: '2026-04-16', duration_mins: 90, status: 'approved' }),
  },
});

module.exports = Object.fromEntries(Object.entries(definitions).map(([key, d]) => [key, trigger(key, d)]));
module.exports.fromWebhook = fromWebhook;
