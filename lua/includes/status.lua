--[[
  Reservation states. Every transition goes through moveStatus, so the
  record, the per-status indexes and the audit trail always change together:

    <prefix>status:<status>  zset of reservation ids in that state. Scores:
                             held -> expiresAt (what expiry reclaims by);
                             every other state -> when it was entered (ms).
                             status:committed is the settlement outbox.
    <prefix>events           capped stream: one entry per transition
                             (reservationId, from, to, amount, reason, at);
                             the record keeps its own entry ids in eventIds.
]]
local EVENTS_MAXLEN = 100000

local function statusKey(prefix, status)
  return prefix .. 'status:' .. status
end

local function appendEvent(prefix, reservationId, from, to, now, amount, reason)
  return redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN, '*',
    'reservationId', reservationId, 'from', from or '', 'to', to, 'amount', int(amount),
    'reason', reason or '', 'at', int(now))
end

-- A new reservation enters `held`; returns the event id for the record's own
-- HSET (reserve writes the whole record in one call).
local function enterHeld(prefix, reservationId, expiresAt, now, amount)
  redis.call('ZADD', statusKey(prefix, 'held'), expiresAt, reservationId)
  return appendEvent(prefix, reservationId, nil, 'held', now, amount, 'reserved')
end

local function moveStatus(prefix, resKey, reservationId, from, to, score, now, amount, reason)
  redis.call('ZREM', statusKey(prefix, from), reservationId)
  redis.call('ZADD', statusKey(prefix, to), score, reservationId)
  local eventId = appendEvent(prefix, reservationId, from, to, now, amount, reason)
  local previous = redis.call('HGET', resKey, 'eventIds')
  redis.call('HSET', resKey, 'status', to, 'eventIds', previous and (previous .. ',' .. eventId) or eventId)
end
