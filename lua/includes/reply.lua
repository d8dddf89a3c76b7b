--[[
  Every script answers {code, nowMs, replayed '0'|'1', payloadJson, holdsExpired}.
  holdsExpired: how many holds this call expired (lazily or as the sweeper),
  passed in by the caller (no shared counter), so metrics see every expiry.
]]
--- @include "includes/numbers"

local function reply(code, now, payload, holdsExpired)
  return {code, int(now), '0', cjson.encode(payload or {}), int(holdsExpired)}
end
