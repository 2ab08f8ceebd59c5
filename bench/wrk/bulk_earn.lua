-- Bulk earn: one request carries `extra` purchases (1,000 in the benchmark) for random members,
-- each item with its own idempotency key; items created are counted from the per-item results.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")
count_items = true

function request()
  local items = {}
  for i = 1, tonumber(extra) do
    local cents = math.random(1000, 200000)
    local key = next_key()
    items[i] = string.format(
      '{"idempotency_key": "%s", "member": %d, "amount": "%d.%02d", "merchant": "m%03d", "receipt_no": "%s"}',
      key, random_member(), math.floor(cents / 100), cents % 100, math.random(1, 10), key)
  end
  return wrk.format("POST", "/api/v1/transactions/earn/batch/", headers(nil), '{"items": [' .. table.concat(items, ", ") .. ']}')
end
