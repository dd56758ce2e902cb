// The "JavaScript (Node.js / fetch)" SDK example of the CombatScore Developer API, verbatim.
// The test replaces only the API_KEY and BASE lines, and reads the line printed at the end.
const API_KEY = "cs_your_key_here";
const BASE = "https://combatscore.app";

// Poll for new members
const members = await fetch(`${BASE}/api/zapier/triggers?type=new_member`, {
  headers: { Authorization: `Bearer ${API_KEY}` },
}).then(r => r.json());

// Create a lead
const lead = await fetch(`${BASE}/api/zapier/actions?type=create_lead`, {
  method: "POST",
  headers: {
    Authorization: `Bearer ${API_KEY}`,
    "Content-Type": "application/json",
  },
  body: JSON.stringify({
    first_name: "Jane",
    last_name: "Doe",
    email: "jane@example.com",
  }),
}).then(r => r.json());

console.log(JSON.stringify({ members, lead }));
