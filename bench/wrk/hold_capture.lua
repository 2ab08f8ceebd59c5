-- Hold then capture over HTTP: each thread places a hold of a fixed number of points (extra
-- argument) on a random member, and captures it with its next request; both carry their own
-- Idempotency-Key. A thread keeps the holds it has placed and not yet captured in a queue.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

function on_init()
  pending = {}
end

function request()
  local hold = table.remove(pending, 1)
  if hold then
    return wrk.format("POST", "/api/v1/holds/" .. hold .. "/capture/", headers(next_key()), "{}")
  end
  local body = string.format('{"member": %d, "points": %d, "purpose": "bench"}', random_member(), tonumber(extra))
  return wrk.format("POST", "/api/v1/holds/", headers(next_key()), body)
end

function on_response(status, body)
  if status == 201 and not body:find('"transaction"', 1, true) then
    local hold = body:match('"hold":{"id":(%d+)')
    if hold then table.insert(pending, hold) end
  end
end
