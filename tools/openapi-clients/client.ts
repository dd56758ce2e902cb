// Calls a live Gymwire through openapi-fetch, typed by the paths openapi-typescript generated from its
// /openapi.json (generated/schema.d.ts): a trigger and an action. `tsc` type-checks it first; a field the
// document does not describe, or a wrong type, fails the compile.
// Usage: node generated/client.js BASE_URL API_KEY
import createClient from "openapi-fetch";
// Node's globals, the one used (no @types/node for a single line).
declare const process: { argv: string[] };
import type { paths } from "./generated/schema.js";

const [baseUrl, key] = process.argv.slice(2) as [string, string];
const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${key}` } });

const triggers = await client.GET("/api/zapier/triggers", { params: { query: { type: "new_member" } } });
if (triggers.error || !triggers.data) {
  throw new Error(`trigger failed: ${JSON.stringify(triggers.error)}`);
}
for (const item of triggers.data) {
  if ("joined_at" in item) {
    const joined: string = item.joined_at;
    console.log(`member ${item.user_id} ${joined}`);
  }
}

const payments = await client.GET("/api/zapier/triggers", { params: { query: { type: "new_payment" } } });
for (const item of payments.data ?? []) {
  if ("amount_cents" in item) {
    const cents: number = item.amount_cents;
    console.log(`payment ${item.user_id} ${cents} ${item.status}`);
  }
}

const action = await client.POST("/api/zapier/actions", {
  params: { query: { type: "create_lead" } },
  body: { first_name: "TypeScript", source: "generated-typescript" },
});
if (action.error || !action.data) {
  throw new Error(`action failed: ${JSON.stringify(action.error)}`);
}
if ("first_name" in action.data) {
  console.log(`lead ${action.data.id} ${action.data.first_name} ${action.data.source}`);
}
