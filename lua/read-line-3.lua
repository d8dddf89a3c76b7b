--[[
  Line snapshot with drawable (the largest amount a reserve would accept now)
  and blockers (the codes that would reject a reserve of minAmount now),
  computed by the same functions reserve uses, after reclaiming due holds.

  KEYS[1] pool hash          <prefix>:{p}:pool
  KEYS[2] live holds zset    <prefix>:{p}:holds
  KEYS[3] credit line hash   <prefix>:{p}:line:<customerId>

  ARGV[1] customerId
  ARGV[2] reclaim limit

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                  payload {line}
    PRODUCT_NOT_FOUND, NO_CREDIT_LINE
]]
--- @include "includes/util"
--- @include "includes/reclaim"
--- @include "includes/views"

local now = nowMs()
reclaimForAnswer(KEYS[1], KEYS[2], now, tonumber(ARGV[2]))
local pool = loadPool(KEYS[1])
if not pool then return reply('PRODUCT_NOT_FOUND', now, {}, false) end
local line = loadLine(KEYS[3])
if not line then return reply('NO_CREDIT_LINE', now, {}, false) end
return reply('OK', now, {line = linePayload(pool, line, ARGV[1], now)}, false)
