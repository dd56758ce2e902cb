'use strict';

const { baseUrl } = require('../lib');

// The four documented polling triggers: the 20 most recent items, newest first; Zapier dedupes by `id`.
const definitions = {
  new_member: {
    noun: 'Member',
    label: 'New Member',
    description: 'Triggers when a new member joins your gym.',
    sample: { id: '0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e60', user_id: 'user_xyz789', role: 'member', joined_at: '2026-04-16T14:30:00.000Z' },
  },
  new_payment: {
    noun: 'Payment',
    label: 'New Payment',
    description: 'Triggers when a payment (invoice) is recorded.',
    sample: { id: '0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e61', user_id: 'user_xyz789', amount_cents: 9900, status: 'paid', created_at: '2026-04-16T14:30:00.000Z' },
  },
  new_session: {
    noun: 'Session',
    label: 'New Training Session',
    description: 'Triggers when a member logs a training session.',
    sample: { id: '0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e62', user_id: 'user_xyz789', session_type: 'no-gi', date: '2026-04-16', duration_mins: 90 },
  },
  new_checkin: {
    noun: 'Check-in',
    label: 'New Check-in',
    description: 'Triggers when a member checks in at the kiosk.',
    sample: { id: '0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e63', user_id: 'user_xyz789', class_schedule_id: null, status: 'approved' },
  },
};

const poll = (type) => async (z, bundle) => {
  const response = await z.request({ url: `${baseUrl(bundle)}/api/zapier/triggers`, params: { type } });
  return response.data;
};

module.exports = Object.fromEntries(Object.entries(definitions).map(([key, d]) => [key, {
  key,
  noun: d.noun,
  display: { label: d.label, description: d.description },
  operation: { perform: poll(key), sample: d.sample },
}]));
module.exports.poll = poll;
