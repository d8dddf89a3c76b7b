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
-- The same as XADD's argument: redis.call arguments are strings (includes/numbers).
local EVENTS_MAXLEN_ARG = '100000'

local function appendEvent(k, reservationId, from, to, now, amount, reason)
  return redis.call('XADD', k.events, 'MAXLEN', '~', EVENTS_MAXLEN_ARG, '*',
    'reservationId', reservationId, 'from', from or '', 'to', to, 'amount', int(amount),
    'reason', reason or '', 'at', int(now))
end

-- A new hold enters `held` (expiresAt: an int() string): its status-set entry and its event. Returns the
-- event's id, the record's first eventIds (the caller builds and saves the record).
local function enterHeld(k, reservationId, expiresAt, amount, now)
  redis.call('ZADD', k.held, expiresAt, reservationId)
  return appendEvent(k, reservationId, nil, 'held', now, amount, 'reserved')
end

-- Moves a record to `to` (the caller saves it).
local function moveStatus(k, record, to, score, now, amount, reason)
  local from = record.status
  redis.call('ZREM', k[from], record.reservationId)
  redis.call('ZADD', k[to], int(score), record.reservationId)
  local eventId = appendEvent(k, record.reservationId, from, to, now, amount, reason)
  record.eventIds = (record.eventIds and record.eventIds ~= '') and (record.eventIds .. ',' .. eventId) or eventId
  record.status = to
end
