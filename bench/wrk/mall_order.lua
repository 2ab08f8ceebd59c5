-- Mall orders placed by members: each request is one member's own order (the member's bearer
-- token, picked at random from the tokens file, the extra argument) of one unit of a random item
-- of first..last (the third and fourth arguments; one item for the flash sale), with its own
-- Idempotency-Key. The api key argument is unused: the member API takes the member's token.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

function on_init()
  tokens = {}
  for line in io.lines(extra) do
    if line ~= "" then table.insert(tokens, line) end
  end
end

function request()
  local h = {["Authorization"] = "Bearer " .. tokens[math.random(#tokens)], ["Content-Type"] = "application/json",
             ["Idempotency-Key"] = next_key()}
  local body = string.format('{"item": %d, "quantity": 1}', random_member())
  return wrk.format("POST", "/api/v1/me/mall/orders/", h, body)
end
