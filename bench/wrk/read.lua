-- A read endpoint for a random member; the extra argument is the path with %d for the member id.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

function request()
  return wrk.format("GET", string.format(extra, random_member()), headers(nil))
end
