# The "Python (requests)" SDK example of the CombatScore Developer API, verbatim.
# The test replaces only the API_KEY and BASE lines, and reads the line printed at the end.
import requests

API_KEY = "cs_your_key_here"
BASE = "https://combatscore.app"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}

# Poll for new members
members = requests.get(
    f"{BASE}/api/zapier/triggers",
    params={"type": "new_member"},
    headers=HEADERS,
).json()

# Create a lead
lead = requests.post(
    f"{BASE}/api/zapier/actions",
    params={"type": "create_lead"},
    headers={**HEADERS, "Content-Type": "application/json"},
    json={"first_name": "Jane", "last_name": "Doe", "email": "jane@example.com"},
).json()

import json
print(json.dumps({"members": members, "lead": lead}))
