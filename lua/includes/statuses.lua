--[[
  Reservation states. Every transition goes through moveStatus, so the
  record, the per-status indexes and the event stream always change together:

    k.<status>  zset of reservation ids in that state (KEYS name it
                status:<status>). Scores: held -> expiresAt (what expiry
                reclaims by); every other state -> when it was entered (ms).
                status:committed is the settlement outbox.
    k.events    capped stream: one entry per transition
                (reservationId, from, to, amount, reason, at);
                the record keeps its own entry ids in eventIds.

  A script passes every status set it may touch in KEYS; k[status] of one it
  did not pass is nil and the call fails loudly.
]]
--- @include "includes/numbers"

local EVENTS_MAXLEN = 100000

local function appendEvent(k, reservationId, from, to, now, amount, reason)
  return redis.call('XADD', k.events, 'MAXLEN', '~', EVENTS_MAXLEN, '*',
    'reservationId', reservationId, 'from', from or '', 'to', to, 'amount', int(amount),
    'reason', reason or '', 'at', int(now))
end

-- A new record enters `held` (the caller saves it).
local function enterHeld(k, record, now)
  redis.call('ZADD', k.held, record.expiresAt, record.reservationId)
  record.eventIds = appendEvent(k, record.reservationId, nil, 'held', now, tonumber(record.amount), 'reserved')
end

-- Moves a record to `to` (the caller saves it).
local function moveStatus(k, record, to, score, now, amount, reason)
  local from = record.status
  redis.call('ZREM', k[from], record.reservationId)
  redis.call('ZADD', k[to], score, record.reservationId)
  local eventId = appendEvent(k, record.reservationId, from, to, now, amount, reason)
  record.eventIds = (record.eventIds and record.eventIds ~= '') and (record.eventIds .. ',' .. eventId) or eventId
  record.status = to
end
