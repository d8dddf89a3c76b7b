--[[
  A pool's counters for the metrics scrape: capacity, held, committed,
  settled, what is available (includes/views.lua's poolAvailability, the one
  rule a reserve also uses) and the settlement backlog. Read-only: nothing
  is reclaimed, so a scrape never writes (a due hold still counts as held
  until a call or the sweeper expires it).

  KEYS[1] pool                       <prefix>:{p}:pool
  KEYS[2] status:committed           <prefix>:{p}:status:committed
  KEYS[3] status:settlement_unknown  <prefix>:{p}:status:settlement_unknown

  Reply: {code, nowMs, '0', payloadJson, '0'}
    OK                  payload {capacity, held, committed, settled, available,
                        availableToAllTiers, backlog (committed records),
                        oldestCommittedAt (ms; absent: none), unknown}
    PRODUCT_NOT_FOUND
]]
--- @include "includes/reply"
--- @include "includes/views"

local k = {pool = KEYS[1], committed = KEYS[2], settlement_unknown = KEYS[3]}
local now = nowMs()
local pool = loadPool(k)
if not pool then return reply('PRODUCT_NOT_FOUND', now, {}, 0) end
local available, availableToAllTiers = poolAvailability(pool)
local oldest = redis.call('ZRANGE', k.committed, 0, 0, 'WITHSCORES')
return reply('OK', now, {
  capacity = int(numOr(pool.capacity, 0)),
  held = int(numOr(pool.held, 0)),
  committed = int(numOr(pool.committed, 0)),
  settled = int(numOr(pool.settled, 0)),
  available = int(available),
  availableToAllTiers = int(availableToAllTiers),
  backlog = int(redis.call('ZCARD', k.committed)),
  oldestCommittedAt = oldest[2] and int(tonumber(oldest[2])) or nil,
  unknown = int(redis.call('ZCARD', k.settlement_unknown)),
}, 0)
