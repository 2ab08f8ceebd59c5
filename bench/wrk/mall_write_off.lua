-- Coupons written off at the merchant's till: each thread writes off the codes of its own file
-- (the extra argument followed by "." and the thread's number, one code a line), each once, with
-- its own Idempotency-Key, and stops when its codes are done.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

function on_init()
  codes, next_code = {}, 0
  for line in io.lines(extra .. "." .. thread_id) do
    if line ~= "" then table.insert(codes, line) end
  end
end

function request()
  next_code = next_code + 1
  if next_code >= #codes then wrk.thread:stop() end
  local code = codes[math.min(next_code, #codes)]
  return wrk.format("POST", "/api/v1/coupons/" .. code .. "/redeem/", headers(next_key()), "{}")
end
