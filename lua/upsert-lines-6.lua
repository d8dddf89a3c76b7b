--[[
  Create or replace credit lines of one product (one for PUT, a batch for the
  bulk import). Config is replaced; counters (held, drawn, settling, repaid)
  are kept.

  KEYS[1] pool                 <prefix>:{p}:pool
  KEYS[2] records              <prefix>:{p}:res
  KEYS[3] lines                <prefix>:{p}:lines
  KEYS[4] events               <prefix>:{p}:events
  KEYS[5] status:held          <prefix>:{p}:status:held
  KEYS[6] status:expired       <prefix>:{p}:status:expired

  ARGV[1] reclaim limit
  ARGV[2..] five values per line: customerId, limit (integer >= 0), status,
            statusReason ('' none), tier ('' none); each already valid.

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                  payload {created, updated, line (the view of the last line)}
    PRODUCT_NOT_FOUND
]]
--- @include "includes/reply"
--- @include "includes/expiry"
--- @include "includes/views"

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], events = KEYS[4], held = KEYS[5],
  expired = KEYS[6]}
local now = nowMs()
-- The answer shows drawable: every due hold counted, as in a read.
local expired = reclaimForAnswer(k, now, tonumber(ARGV[1]))
local pool = loadPool(k)
if not pool then return reply('PRODUCT_NOT_FOUND', now, {}, expired) end

local created, updated = 0, 0
local stamp = int(now)
local customerId
for a = 2, #ARGV, 5 do
  customerId = ARGV[a]
  local json = redis.call('HGET', k.lines, customerId)
  local line
  if json then
    updated = updated + 1
    line = cjson.decode(json)
    for _, counter in ipairs({'held', 'drawn', 'settling'}) do line[counter] = line[counter] or '0' end
  else
    created = created + 1
    line = {held = '0', drawn = '0', settling = '0', repaid = '0', createdAt = stamp}
  end
  line.limit, line.status, line.statusReason, line.tier = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  line.updatedAt = stamp
  saveLine(k, customerId, line)
end

return reply('OK', now, {created = int(created), updated = int(updated),
  line = linePayload(pool, loadLine(k, customerId), customerId, now)}, expired)
