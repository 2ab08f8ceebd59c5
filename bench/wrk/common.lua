-- Shared by the load scripts (loaded with dofile): arguments, per-thread status counts, and one
-- "BENCH_JSON {...}" summary line on stdout that bench/run.py parses.
-- Every script is called as: wrk ... -s <script> <url> -- <api key> <key prefix> <first member> <last member> [extra]
local threads = {}
local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_id", next_thread)
  table.insert(threads, thread)
end

function init(args)
  api_key, key_prefix = args[1], args[2]
  first_member, last_member = tonumber(args[3]), tonumber(args[4])
  extra = args[5]
  sent = 0
  statuses = {}
  items_created = 0
  items_failed = 0
  math.randomseed(os.time() * 1000 + thread_id)
  if on_init then on_init() end
end

function headers(idempotency_key)
  local h = {["Authorization"] = "Api-Key " .. api_key, ["Content-Type"] = "application/json"}
  if idempotency_key then h["Idempotency-Key"] = idempotency_key end
  return h
end

function next_key()
  sent = sent + 1
  return key_prefix .. thread_id .. "-" .. sent
end

function random_member()
  return math.random(first_member, last_member)
end

function response(status, hdrs, body)
  statuses[status] = (statuses[status] or 0) + 1
  if on_response then on_response(status, body) end
  if count_items and status == 200 then
    for _ in string.gmatch(body, '"status":"created"') do items_created = items_created + 1 end
    for _ in string.gmatch(body, '"status":"error"') do items_failed = items_failed + 1 end
  end
end

function done(summary, latency, requests)
  local merged, created, failed = {}, 0, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + count
    end
    created = created + thread:get("items_created")
    failed = failed + thread:get("items_failed")
  end
  local parts = {}
  for status, count in pairs(merged) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "statuses": {%s}, ' ..
    '"socket_errors": %d, "items": {"created": %d, "error": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), table.concat(parts, ", "),
    errors.connect + errors.read + errors.write + errors.timeout, created, failed))
end
