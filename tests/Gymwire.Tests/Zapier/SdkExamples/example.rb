# The "Ruby" SDK example of the CombatScore Developer API, verbatim.
# The test replaces only the API_KEY and BASE lines, and reads the line printed at the end.
require "net/http"
require "json"
require "uri"

API_KEY = "cs_your_key_here"
BASE = "https://combatscore.app"

# Poll for new members
uri = URI("#{BASE}/api/zapier/triggers?type=new_member")
req = Net::HTTP::Get.new(uri)
req["Authorization"] = "Bearer #{API_KEY}"
res = Net::HTTP.start(uri.hostname, uri.port, use_ssl: true) { |http| http.request(req) }
members = JSON.parse(res.body)

puts JSON.generate({ "members" => members })
