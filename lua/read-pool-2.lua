--[[
  Pool snapshot: config, counters and availability, after reclaiming due holds.

  KEYS[1] pool hash          <prefix>:{p}:pool
  KEYS[2] live holds zset    <prefix>:{p}:holds

  ARGV[1] reclaim limit

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                  payload {pool}
    PRODUCT_NOT_FOUND
]]
--- @include "includes/util"
--- @include "includes/reclaim"
--- @include "includes/views"

local now = nowMs()
reclaimForAnswer(KEYS[1], KEYS[2], now, tonumber(ARGV[1]))
local pool = loadPool(KEYS[1])
if not pool then return reply('PRODUCT_NOT_FOUND', now, {}, false) end
return reply('OK', now, {pool = poolPayload(pool, now)}, false)
