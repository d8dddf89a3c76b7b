--[[
  Every script answers {code, nowMs, replayed '0'|'1', payloadJson, holdsExpired}.
  holdsExpired: how many holds this call expired (lazily or as the sweeper),
  passed in by the caller (no shared counter), so metrics see every expiry.
  payload: a table, or JSON already encoded (a string).
]]
--- @include "includes/numbers"

local function reply(code, now, payload, holdsExpired)
  local json = type(payload) == 'string' and payload or cjson.encode(payload or {})
  return {code, int(now), '0', json, int(holdsExpired)}
end
