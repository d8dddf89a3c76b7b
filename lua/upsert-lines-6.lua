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
  ARGV[2] webhooks: '1' records line.status_changed / line.limit_changed for an existing
          line whose status / limit changes (creating a line records none), '' records nothing
  ARGV[3..] five values per line: customerId, limit (integer >= 0), status,
            statusReason ('' none), tier ('' none); each already valid.

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                  payload {created, updated, line (the view of the last line)}
    PRODUCT_NOT_FOUND
]]
--- @include "includes/reply"
--- @include "includes/expiry"
--- @include "includes/views"
--- @include "includes/webhooks"

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], events = KEYS[4], held = KEYS[5],
  expired = KEYS[6]}
local now = nowMs()
-- The answer shows drawable: every due hold counted, as in a read.
local expired = reclaimForAnswer(k, now, tonumber(ARGV[1]))
local pool = loadPool(k)
if not pool then return reply('PRODUCT_NOT_FOUND', now, {}, expired) end

local webhooks = ARGV[2] == '1'
local created, updated = 0, 0
local stamp = int(now)
local customerId
for a = 3, #ARGV, 5 do
  customerId = ARGV[a]
  local json = redis.call('HGET', k.lines, customerId)
  local line, before
  if json then
    updated = updated + 1
    line = cjson.decode(json)
    if webhooks then before = linePayload(pool, line, customerId, now) end
    for _, counter in ipairs({'held', 'drawn', 'settling'}) do line[counter] = line[counter] or '0' end
  else
    created = created + 1
    line = {held = '0', drawn = '0', settling = '0', repaid = '0', createdAt = stamp}
  end
  line.limit, line.status, line.statusReason, line.tier = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  line.updatedAt = stamp
  saveLine(k, customerId, line)
  if before and (before.status ~= line.status or before.limit ~= line.limit) then
    local after = linePayload(pool, loadLine(k, customerId), customerId, now)
    local data = cjson.encode({customerId = customerId, before = before, after = after})
    if before.status ~= line.status then recordWebhook(k, 'line.status_changed', now, data) end
    if before.limit ~= line.limit then recordWebhook(k, 'line.limit_changed', now, data) end
  end
end

return reply('OK', now, {created = int(created), updated = int(updated),
  line = linePayload(pool, loadLine(k, customerId), customerId, now)}, expired)
