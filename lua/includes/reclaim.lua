--[[
  Expiry: a hold whose expiresAt (ms, Redis clock) is <= now is expired, and its
  amount goes back to the pool and the line exactly once. Live holds are the
  product's status:held sorted set (score = expiresAt).
]]
--- @include "includes/status"

local function endHold(prefix, poolKey, resKey, reservationId, now, newStatus, reason)
  local r = redis.call('HMGET', resKey, 'status', 'amount', 'customerId')
  if r[1] ~= 'held' then
    redis.call('ZREM', statusKey(prefix, 'held'), reservationId)
    return 0
  end
  local amount = tonumber(r[2])
  moveStatus(prefix, resKey, reservationId, 'held', newStatus, now, now, amount, reason)
  redis.call('HSET', resKey, 'endedAt', int(now))
  redis.call('EXPIRE', resKey, RETENTION_SECONDS)
  redis.call('HINCRBY', poolKey, 'held', -amount)
  redis.call('HINCRBY', lineKey(prefix, r[3]), 'held', -amount)
  if newStatus == 'expired' then holdsExpiredHere = holdsExpiredHere + 1 end
  return amount
end

-- Reclaims at most `limit` due holds of this product (bounded work per call;
-- the sweeper drains the rest). Returns how many it reclaimed: fewer than
-- `limit` means none is left due.
local function reclaimDue(prefix, poolKey, holdsKey, now, limit)
  local due = redis.call('ZRANGEBYSCORE', holdsKey, '-inf', now, 'LIMIT', 0, limit)
  for i = 1, #due do
    endHold(prefix, poolKey, reservationKey(prefix, due[i]), due[i], now, 'expired', 'hold expired')
  end
  return #due
end

-- When more holds fell due at once than one batch returns (a launch peak with
-- a shared TTL), an answer that shows drawable (a read, a refusal, a repayment,
-- a line upsert) must not count them: they get a second,
-- larger batch first. Only past limit * (1 + DUE_BURST_FACTOR) due holds at
-- once does a call still see some, until the sweeper (or the next call)
-- returns them.
local DUE_BURST_FACTOR = 10
local function reclaimBurst(prefix, poolKey, holdsKey, now, limit)
  return reclaimDue(prefix, poolKey, holdsKey, now, limit * DUE_BURST_FACTOR)
end

-- For a call whose answer shows drawable: one batch, and the larger one when
-- the first came back full.
local function reclaimForAnswer(poolKey, holdsKey, now, limit)
  local prefix = productPrefix(poolKey)
  if reclaimDue(prefix, poolKey, holdsKey, now, limit) == limit then
    reclaimBurst(prefix, poolKey, holdsKey, now, limit)
  end
end
