--[[
  Expiry: a hold whose expiresAt (ms, Redis clock) is <= now is expired, and
  its amount goes back to the pool and the line exactly once. Live holds are
  the product's status:held zset (score = expiresAt).

  Every script that may end a hold passes the same keys: k.pool, k.records,
  k.lines, k.events, k.held, k.expired (and k.released to release).
]]
--- @include "includes/numbers"
--- @include "includes/records"
--- @include "includes/lines"
--- @include "includes/statuses"

-- Ends a live hold (status released or expired) and saves the record; returns its JSON.
local function endHold(k, record, now, newStatus, reason)
  local amount = record.amount + 0
  moveStatus(k, record, newStatus, now, now, amount, reason)
  record.endedAt = int(now)
  redis.call('HINCRBY', k.pool, 'held', int(-amount))
  addToLine(k, record.customerId, {held = -amount})
  return saveRecord(k, record)
end

-- Expires at most `limit` due holds of this product (bounded work per call;
-- the sweeper drains the rest). Returns (entries looked at, holds expired):
-- fewer than `limit` looked at means none is left due.
local function reclaimDue(k, now, limit)
  local due = redis.call('ZRANGEBYSCORE', k.held, '-inf', int(now), 'LIMIT', '0', int(limit))
  local expired = 0
  for i = 1, #due do
    local record = loadRecord(k, due[i])
    if record and record.status == 'held' then
      endHold(k, record, now, 'expired', 'hold expired')
      expired = expired + 1
    else
      redis.call('ZREM', k.held, due[i]) -- a stale index entry
    end
  end
  return #due, expired
end

-- When more holds fell due at once than one batch returns (a launch peak with
-- a shared TTL), an answer that shows drawable (a read, a refusal, a
-- repayment, a line upsert) must not count them: they get a second, larger
-- batch first. Only past limit * (1 + DUE_BURST_FACTOR) due holds at once does
-- a call still see some, until the sweeper (or the next call) returns them.
local DUE_BURST_FACTOR = 10

-- The second batch; returns the holds it expired.
local function reclaimBurst(k, now, limit)
  local _, expired = reclaimDue(k, now, limit * DUE_BURST_FACTOR)
  return expired
end

-- For a call whose answer shows drawable: one batch, and the larger one when
-- the first came back full. Returns the holds expired.
local function reclaimForAnswer(k, now, limit)
  local looked, expired = reclaimDue(k, now, limit)
  if looked == limit then expired = expired + reclaimBurst(k, now, limit) end
  return expired
end
