-- The single earn (earn.lua) as a phone app sends it: each request names a device (X-Device-Id),
-- one of `extra` devices at random, so that a device rule records and counts it as in production.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "earn.lua")

local earn_headers = headers

function headers(idempotency_key)
  local h = earn_headers(idempotency_key)
  h["X-Device-Id"] = "bench-device-" .. math.random(1, tonumber(extra))
  return h
end
