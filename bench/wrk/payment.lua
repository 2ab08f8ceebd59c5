-- Payments with points authorised then captured: each thread authorises a payment of a fixed
-- number of points (extra argument) of a random member named by id, for a bill of its own, and
-- captures it with its next request; both carry their own Idempotency-Key. A thread keeps the
-- payments it has authorised and not yet captured in a queue.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

function on_init()
  pending = {}
end

function request()
  local payment = table.remove(pending, 1)
  if payment then
    return wrk.format("POST", "/api/v1/payments/" .. payment .. "/capture/", headers(next_key()), "{}")
  end
  local key = next_key()
  local body = string.format('{"member": %d, "bill_no": "%s", "bill_amount": "1000.00", "points": %d}',
                             random_member(), key, tonumber(extra))
  return wrk.format("POST", "/api/v1/payments/", headers(key), body)
end

function on_response(status, body)
  if status == 201 then
    local payment = body:match('"payment":{"id":(%d+),"status":"authorized"')
    if payment then table.insert(pending, payment) end
  end
end
