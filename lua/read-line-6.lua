--[[
  Line snapshot with drawable (the largest amount a reserve would accept now)
  and blockers (the codes that would reject a reserve of minAmount now),
  computed by the same functions reserve uses, after reclaiming due holds.

  KEYS[1] pool                 <prefix>:{p}:pool
  KEYS[2] records              <prefix>:{p}:res
  KEYS[3] lines                <prefix>:{p}:lines
  KEYS[4] events               <prefix>:{p}:events
  KEYS[5] status:held          <prefix>:{p}:status:held
  KEYS[6] status:expired       <prefix>:{p}:status:expired

  ARGV[1] customerId
  ARGV[2] reclaim limit

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                  payload {line, pool}
    PRODUCT_NOT_FOUND, NO_CREDIT_LINE
]]
--- @include "includes/reply"
--- @include "includes/expiry"
--- @include "includes/views"

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], events = KEYS[4], held = KEYS[5],
  expired = KEYS[6]}
local now = nowMs()
local expired = reclaimForAnswer(k, now, tonumber(ARGV[2]))
local pool = loadPool(k)
if not pool then return reply('PRODUCT_NOT_FOUND', now, {}, expired) end
local line = loadLine(k, ARGV[1])
if not line then return reply('NO_CREDIT_LINE', now, {}, expired) end
return reply('OK', now, {line = linePayload(pool, line, ARGV[1], now), pool = poolPayload(pool, now)}, expired)
