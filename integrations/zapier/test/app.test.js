'use strict';

// Runs the app against a live Gymwire (started by the .NET test ZapierAppTests, which passes its URL and a
// read/write key). A local HTTP server stands in for Zapier's hook URL.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { randomUUID } = require('node:crypto');
const zapier = require('zapier-platform-core');
const App = require('../index');

const appTester = zapier.createAppTester(App);
const authData = { base_url: process.env.GYMWIRE_BASE_URL, api_key: process.env.GYMWIRE_API_KEY };
// bundle.meta as Zapier documents it for a run (docs.zapier.com/platform/build-cli/core, "bundle.meta"): nothing in
// it names the task.
const meta = {
  isLoadingSample: false, isFillingDynamicDropdown: false, isPopulatingDedupe: false, isTestingAuth: false,
  limit: -1, page: 0, timezone: null, inputFields: {},
};
const bundle = (extra = {}) => ({ authData, inputData: {}, meta, ...extra });

let hookServer;
let hookUrl;
const received = [];
let waiting = [];

// The next delivery to `path` on the stand-in hook URL (or one already received and not yet taken).
const delivery = (path) => {
  const index = received.findIndex((d) => d.path === path);
  if (index >= 0) {
    return Promise.resolve(received.splice(index, 1)[0]);
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no delivery to ${path} within 20 s`)), 20000);
    waiting.push({ path, resolve: (d) => { clearTimeout(timer); resolve(d); } });
  });
};

before(async () => {
  assert.ok(authData.base_url && authData.api_key, 'GYMWIRE_BASE_URL and GYMWIRE_API_KEY are required');
  hookServer = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      res.writeHead(200).end('ok');
      const arrived = { path: req.url, headers: req.headers, body };
      const waiter = waiting.find((w) => w.path === arrived.path);
      if (waiter) {
        waiting = waiting.filter((w) => w !== waiter);
        waiter.resolve(arrived);
      } else {
        received.push(arrived);
      }
    });
  });
  await new Promise((resolve) => hookServer.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${hookServer.address().port}`;
});

after(() => hookServer.close());

// Gymwire's API with the connection's key, outside the app (what the gym's other clients do).
const gymwire = (method, path, body) => fetch(`${authData.base_url}${path}`, {
  method,
  headers: { Authorization: `Bearer ${authData.api_key}`, 'Content-Type': 'application/json' },
  body: body === undefined ? undefined : JSON.stringify(body),
});

test('the app definition passes the Zapier platform schema', () => {
  const { validateApp } = require('zapier-platform-core/src/tools/schema');
  assert.deepEqual(validateApp(App), []);
});

test('the connection test names the gym and the key', async () => {
  const me = await appTester(App.authentication.test, bundle());
  assert.equal(me.actor, 'api_key');
  assert.equal(me.key_name, process.env.GYMWIRE_KEY_NAME);
  assert.ok(me.gym_name);
});

// ExpiredAuthError, not RefreshAuthError: an API key has no refresh, so Zapier must stop the Zap and ask the user to
// reconnect instead of trying a refresh the app does not have.
const expiredAuth = (error) => {
  assert.equal(error.name, 'ExpiredAuthError');
  assert.match(error.message, /Invalid API key/);
  return true;
};

test('a bad key fails the connection test with the server message, asking to reconnect', async () => {
  await assert.rejects(
    appTester(App.authentication.test, { authData: { ...authData, api_key: 'cs_' + '0'.repeat(64) } }),
    expiredAuth);
});

test('a trigger or an action with a bad key stops asking to reconnect', async () => {
  const badKey = { authData: { ...authData, api_key: 'cs_' + '0'.repeat(64) }, inputData: {}, meta };
  await assert.rejects(appTester(App.triggers.new_member.operation.perform, badKey), expiredAuth);
  await assert.rejects(
    appTester(App.creates.create_lead.operation.perform, { ...badKey, inputData: { first_name: 'Zap' } }),
    expiredAuth);
});

test('the three actions create a lead, queue an SMS and log attendance', async () => {
  const lead = await appTester(App.creates.create_lead.operation.perform, bundle({ inputData: { first_name: 'Zap', last_name: 'Lead' } }));
  assert.equal(lead.source, 'zapier');
  const sms = await appTester(App.creates.send_sms.operation.perform, bundle({ inputData: { phone: '+15551234567', message: 'Welcome to our gym!' } }));
  assert.equal(sms.status, 'queued');
  const checkin = await appTester(App.creates.log_attendance.operation.perform, bundle({ inputData: { user_id: process.env.GYMWIRE_USER_ID } }));
  assert.equal(checkin.user_id, process.env.GYMWIRE_USER_ID);
  await assert.rejects(appTester(App.creates.send_sms.operation.perform, bundle({ inputData: { phone: '555', message: 'x' } })), /E\.164/);
});

test('the four polling triggers return the documented fields, newest first', async () => {
  const expected = {
    new_member: ['id', 'user_id', 'role', 'joined_at'],
    new_payment: ['id', 'user_id', 'amount_cents', 'status', 'created_at'],
    new_session: ['id', 'user_id', 'session_type', 'date', 'duration_mins'],
    new_checkin: ['id', 'user_id', 'class_schedule_id', 'status'],
  };
  for (const [key, fields] of Object.entries(expected)) {
    const items = await appTester(App.triggers[key].operation.perform, bundle());
    assert.ok(Array.isArray(items) && items.length > 0, `${key} returned items`);
    assert.ok(items.length <= 20);
    for (const item of items) {
      assert.deepEqual(Object.keys(item), fields, key);
    }
  }
});

test('an instant trigger subscribes, receives a signed event, and unsubscribes', async () => {
  const trigger = App.triggers.member_joined.operation;
  const subscription = await appTester(trigger.performSubscribe, bundle({ targetUrl: `${hookUrl}/member-joined` }));
  assert.ok(subscription.id);
  assert.equal(subscription.secret, undefined, 'the signing secret is not kept in the Zap');
  assert.deepEqual(subscription.events, ['member.joined']);

  const created = await gymwire('POST', '/api/gym/members', { name: 'Instant Member', user_id: 'user_instant' });
  assert.equal(created.status, 201);

  const joined = await delivery('/member-joined');
  assert.equal(joined.headers['x-combatscore-event'], 'member.joined');
  const items = await appTester(trigger.perform, bundle({ cleanedRequest: JSON.parse(joined.body) }));
  assert.equal(items.length, 1);
  assert.equal(items[0].user_id, 'user_instant');
  assert.equal(items[0].event, 'member.joined');

  const listed = await appTester(trigger.performList, bundle());
  assert.ok(listed.length > 0);
  assert.deepEqual(Object.keys(listed[0]).sort(), Object.keys(items[0]).sort(), 'performList has the webhook items\' shape');

  await appTester(trigger.performUnsubscribe, bundle({ subscribeData: subscription }));
  const hooks = await (await gymwire('GET', '/api/gym/webhooks')).json();
  assert.equal(hooks.webhooks.find((w) => w.id === subscription.id).is_active, false, 'unsubscribe deactivates the webhook');
});

test('an action sends no Idempotency-Key: each run of a task creates', async () => {
  // Zapier documents an id in meta only for performBuffer's items (bufferedBundle.buffer[].meta.id), an internal-only
  // feature; a create's perform gets none, so the app must not build a key from one even where a bundle has it.
  const input = { first_name: 'Replayed', last_name: 'Step' };
  const first = await appTester(App.creates.create_lead.operation.perform, bundle({ inputData: input, meta: { ...meta, id: 'run-1' } }));
  const second = await appTester(App.creates.create_lead.operation.perform, bundle({ inputData: input, meta: { ...meta, id: 'run-1' } }));
  assert.notEqual(second.id, first.id, 'the second run is a new lead, not a replay of the first');
});

test('Member Checked In (Instant) starts a Zap for kiosk check-ins only, as New Check-in does', async () => {
  const trigger = App.triggers.checked_in.operation;
  const subscription = await appTester(trigger.performSubscribe, bundle({ targetUrl: `${hookUrl}/checked-in` }));
  try {
    // A check-in the app's own Log Attendance made (source "api"): a Zap "Checked In → Log Attendance" would loop.
    const logged = await appTester(App.creates.log_attendance.operation.perform, bundle({ inputData: { user_id: process.env.GYMWIRE_USER_ID } }));
    assert.equal(logged.source, 'api');
    const fromApi = JSON.parse((await delivery('/checked-in')).body);
    assert.equal(fromApi.data.attendance_id, logged.id);
    assert.deepEqual(await appTester(trigger.perform, bundle({ cleanedRequest: fromApi })), []);

    const kiosk = await gymwire('POST', '/api/gym/checkins', { user_id: process.env.GYMWIRE_USER_ID });
    assert.equal(kiosk.status, 201);
    const fromKiosk = JSON.parse((await delivery('/checked-in')).body);
    const items = await appTester(trigger.perform, bundle({ cleanedRequest: fromKiosk }));
    assert.equal(items.length, 1);
    assert.equal(items[0].attendance_id, (await kiosk.json()).id);
    assert.equal(items[0].source, 'kiosk');

    // The polling trigger agrees: the API check-in is not among its items, the kiosk one is.
    const polled = (await appTester(App.triggers.new_checkin.operation.perform, bundle())).map((c) => c.id);
    assert.ok(!polled.includes(logged.id));
    assert.ok(polled.includes(items[0].attendance_id));
  } finally {
    await appTester(trigger.performUnsubscribe, bundle({ subscribeData: subscription }));
  }
});

test("a test send from Gymwire's dashboard starts no Zap", async () => {
  const trigger = App.triggers.checked_in.operation;
  const subscription = await appTester(trigger.performSubscribe, bundle({ targetUrl: `${hookUrl}/test-send` }));
  try {
    const sent = await gymwire('POST', `/api/gym/webhooks/${subscription.id}/test`, {});
    assert.equal(sent.status, 200);
    const payload = JSON.parse((await delivery('/test-send')).body);
    assert.equal(payload.test, true);
    assert.equal(payload.data.source, 'kiosk', 'the sample would pass the kiosk rule: only "test" stops it');
    assert.deepEqual(await appTester(trigger.perform, bundle({ cleanedRequest: payload })), []);
  } finally {
    await appTester(trigger.performUnsubscribe, bundle({ subscribeData: subscription }));
  }
});

test('turning a Zap off succeeds when its webhook is gone, and still fails on other errors', async () => {
  const trigger = App.triggers.member_joined.operation;
  // An id Gymwire does not know for this key: a webhook the owner deleted, or one another key made, answers 404.
  const gone = { id: randomUUID(), events: ['member.joined'] };
  assert.equal((await gymwire('DELETE', `/api/gym/webhooks/${gone.id}`)).status, 404);
  await appTester(trigger.performUnsubscribe, bundle({ subscribeData: gone }));

  const subscription = await appTester(trigger.performSubscribe, bundle({ targetUrl: `${hookUrl}/unsubscribe` }));
  await assert.rejects(
    appTester(trigger.performUnsubscribe, { authData: { ...authData, api_key: 'cs_' + '0'.repeat(64) }, subscribeData: subscription }),
    expiredAuth);
  await appTester(trigger.performUnsubscribe, bundle({ subscribeData: subscription }));
  const hooks = await (await gymwire('GET', '/api/gym/webhooks')).json();
  assert.equal(hooks.webhooks.find((w) => w.id === subscription.id).is_active, false);
});

test("a 429 names Gymwire's limit and Zapier retries after Gymwire's Retry-After", async () => {
  // Last in the file: it uses up the gym's actions, and the test server's clock stands still, so they stay used up.
  let refused;
  for (let i = 0; i < 100 && !refused; i++) {
    const response = await gymwire('POST', '/api/zapier/actions?type=create_lead', { first_name: 'Filler' });
    if (response.status === 429) {
      refused = response;
    }
  }
  assert.ok(refused, 'the actions limit was reached');
  const retryAfter = Number(refused.headers.get('retry-after'));
  // ZapierAppTests sets an actions window other than a minute, so the header's value is not the app's fallback.
  assert.notEqual(retryAfter, 60);
  // Gymwire's own message names the limit it counted the request against, with the configured window.
  assert.equal((await refused.json()).error,
    `Rate limit exceeded: 30 requests every 90 seconds per gym for Zapier actions; retry after ${retryAfter} seconds`);

  const error = await appTester(App.creates.create_lead.operation.perform, bundle({ inputData: { first_name: 'Throttled' } }))
    .then(() => assert.fail('the action ran past the limit'), (e) => e);
  assert.equal(error.name, 'ThrottledError');
  const { message, delay } = JSON.parse(error.message);
  assert.equal(delay, retryAfter);
  assert.equal(message,
    `Gymwire's rate limit on this gym's actions (Create Lead, Send SMS, Log Attendance) was reached; it allows more in ${retryAfter} seconds, and Zapier tries again then.`);
});
