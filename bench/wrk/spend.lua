-- Redemptions racing on a few wallets: members first_member..last_member (the hot wallets),
-- a fixed number of points per request (extra argument), each with its own Idempotency-Key.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

function request()
  local body = string.format('{"member": %d, "points": %d, "reason": "bench"}', random_member(), tonumber(extra))
  return wrk.format("POST", "/api/v1/transactions/spend/", headers(next_key()), body)
end
