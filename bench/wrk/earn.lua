-- Single earn: a purchase at a random merchant of the key's business unit, for a random member,
-- each request with its own Idempotency-Key.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

function request()
  local cents = math.random(1000, 200000)
  local key = next_key()
  local body = string.format('{"member": %d, "amount": "%d.%02d", "merchant": "m%03d", "receipt_no": "%s"}',
    random_member(), math.floor(cents / 100), cents % 100, math.random(1, 10), key)
  return wrk.format("POST", "/api/v1/transactions/earn/", headers(key), body)
end
