--[[
  Create or replace credit lines of one product (one for PUT, a batch for the
  bulk import). Config is replaced; counters (held, drawn, settling) are kept.
  Called with a variable number of keys.

  KEYS[1]    pool hash              <prefix>:{p}:pool
  KEYS[2]    live holds zset        <prefix>:{p}:holds
  KEYS[3..]  credit line hashes     <prefix>:{p}:line:<customerId>, one per line

  ARGV[1] reclaim limit
  ARGV[2..] five values per line, in KEYS order: customerId, limit (integer >= 0),
            status, statusReason ('' none), tier ('' none); each already valid.

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                  payload {created, updated, line (the view of the last line)}
    PRODUCT_NOT_FOUND
]]
--- @include "includes/util"
--- @include "includes/reclaim"
--- @include "includes/views"

local poolKey, holdsKey = KEYS[1], KEYS[2]
local now = nowMs()
-- The answer shows drawable: every due hold counted, as in a read.
reclaimForAnswer(poolKey, holdsKey, now, tonumber(ARGV[1]))
local pool = loadPool(poolKey)
if not pool then return reply('PRODUCT_NOT_FOUND', now, {}, false) end

local created, updated = 0, 0
local stamp = int(now)
for i = 3, #KEYS do
  local a = 2 + (i - 3) * 5
  local key = KEYS[i]
  if redis.call('EXISTS', key) == 1 then
    updated = updated + 1
  else
    created = created + 1
    redis.call('HSET', key, 'held', '0', 'drawn', '0', 'settling', '0', 'createdAt', stamp)
  end
  redis.call('HSET', key, 'limit', ARGV[a + 1], 'status', ARGV[a + 2],
    'statusReason', ARGV[a + 3], 'tier', ARGV[a + 4], 'updatedAt', stamp)
end

local last = #KEYS
local customerId = ARGV[2 + (last - 3) * 5]
return reply('OK', now, {created = int(created), updated = int(updated),
  line = linePayload(pool, loadLine(KEYS[last]), customerId, now)}, false)
