'use strict';

const { baseUrl } = require('../lib');

// The three documented actions. They send no Idempotency-Key: Zapier gives a create's perform nothing that names
// the task and stays the same when the step is replayed, and a key made up per call would match nothing.
const action = (type) => async (z, bundle) => {
  const body = Object.fromEntries(Object.entries(bundle.inputData).filter(([, v]) => v !== undefined && v !== ''));
  const response = await z.request({ url: `${baseUrl(bundle)}/api/zapier/actions`, method: 'POST', params: { type }, body });
  return response.data;
};

module.exports = {
  create_lead: {
    key: 'create_lead',
    noun: 'Lead',
    display: { label: 'Create Lead', description: "Adds a new lead to your gym's CRM." },
    operation: {
      inputFields: [
        { key: 'first_name', label: 'First Name', required: true },
        { key: 'last_name', label: 'Last Name' },
        { key: 'email', label: 'Email' },
        { key: 'phone', label: 'Phone', helpText: 'As written, e.g. +15551234567 or (555) 123-4567' },
        { key: 'source', label: 'Source', helpText: 'Defaults to zapier' },
      ],
      perform: action('create_lead'),
      sample: { id: '0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e64', first_name: 'John', last_name: 'Doe', email: 'john@example.com', phone: null, source: 'zapier', created_at: '2026-04-16T14:30:00.000Z' },
    },
  },
  send_sms: {
    key: 'send_sms',
    noun: 'SMS',
    display: { label: 'Send SMS', description: 'Queues an outbound SMS message.' },
    operation: {
      inputFields: [
        { key: 'phone', label: 'Phone', required: true, helpText: 'E.164, e.g. +15551234567' },
        { key: 'message', label: 'Message', required: true, type: 'text', helpText: 'Up to 1600 characters' },
      ],
      perform: action('send_sms'),
      sample: { id: '0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e65', phone: '+15551234567', message: 'Welcome to our gym!', status: 'queued', provider_message_id: null, error: null, created_at: '2026-04-16T14:30:00.000Z', sent_at: null },
    },
  },
  log_attendance: {
    key: 'log_attendance',
    noun: 'Attendance',
    display: { label: 'Log Attendance', description: 'Logs a manual attendance check-in for a member.' },
    operation: {
      inputFields: [{ key: 'user_id', label: 'User ID', required: true, helpText: "The member's user id, e.g. user_abc123" }],
      perform: action('log_attendance'),
      sample: { id: '0190b3c8-5a4e-7c2e-9d6b-2f1a3c4d5e66', user_id: 'user_abc123', class_schedule_id: null, status: 'approved', source: 'api', checked_in_at: '2026-04-16T14:30:00.000Z' },
    },
  },
};
