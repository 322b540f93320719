-- wrk script for scripts/load: POSTs short chat messages (rotating) as JSON to the path given
-- to wrk, and prints one JSON line of results for the table.
local messages = {
  "where is my parcel? it was due on monday",
  "thanks, the agent sorted it out in two minutes",
  "this is the third time I ask, I want a refund",
  "can I change the delivery address please",
  "the app crashes every time I open the basket",
  "great service, very happy with the new plan",
  "my card was charged twice for one order",
  "ok",
}
local i = 0
request = function()
  i = i + 1
  local text = messages[(i % #messages) + 1]
  return wrk.format("POST", nil, { ["content-type"] = "application/json" },
    '{"text":"' .. text .. '","metadata":{"channel":"chat"}}')
end

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"errors":%d,"non_2xx":%d,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, errors, summary.errors.status,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3))
end
