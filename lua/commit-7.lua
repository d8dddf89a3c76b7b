--[[
  Commit: turn a live hold into a draw. Committing less than the hold
  releases the rest at once. Idempotent by state: committing again with no
  amount, or with the amount already committed, answers the current state.

  KEYS[1] pool                 <prefix>:{p}:pool
  KEYS[2] records              <prefix>:{p}:res
  KEYS[3] lines                <prefix>:{p}:lines
  KEYS[4] events               <prefix>:{p}:events
  KEYS[5] status:held          <prefix>:{p}:status:held
  KEYS[6] status:expired       <prefix>:{p}:status:expired    (a due hold is expired, not committed)
  KEYS[7] status:committed     <prefix>:{p}:status:committed  (the settlement outbox)

  ARGV[1] reservationId
  ARGV[2] amount to commit ('' = all of the hold)

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                             payload {reservation}
    PRODUCT_NOT_FOUND, RESERVATION_NOT_FOUND
    RESERVATION_EXPIRED, RESERVATION_RELEASED      payload {reservation}
    RESERVATION_ALREADY_COMMITTED  another amount than the one committed; payload {reservation}
    ACCOUNT_FROZEN, ACCOUNT_CLOSED the hold stays; payload {reservation, statusReason}
    COMMIT_EXCEEDS_HOLD            payload {reservation}
]]
--- @include "includes/reply"
--- @include "includes/reservation-lookup"
--- @include "includes/views"

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], events = KEYS[4], held = KEYS[5],
  expired = KEYS[6], committed = KEYS[7]}
local reservationId, requested = ARGV[1], ARGV[2]
local now = nowMs()

local res, err, expired = loadReservation(k, reservationId, now)
if err then return reply(err, now, {}, expired) end

if res.status == 'expired' then return reply('RESERVATION_EXPIRED', now, {reservation = res}, expired) end
if res.status == 'released' then return reply('RESERVATION_RELEASED', now, {reservation = res}, expired) end
if COMMITTED_STATES[res.status] then
  if requested == '' or tonumber(requested) == tonumber(res.committedAmount) then
    return reply('OK', now, {reservation = res}, expired)
  end
  return reply('RESERVATION_ALREADY_COMMITTED', now, {reservation = res}, expired)
end

local line = loadLine(k, res.customerId)
local statusCode = line and LINE_STATUS_BLOCKER[line.status]
if statusCode == 'ACCOUNT_FROZEN' or statusCode == 'ACCOUNT_CLOSED' then
  return reply(statusCode, now, {reservation = res, statusReason = line.statusReason}, expired)
end

local held = res.amount + 0
local amount = held
if requested ~= '' then amount = requested + 0 end
if amount > held then return reply('COMMIT_EXCEEDS_HOLD', now, {reservation = res}, expired) end

local reason = 'committed'
if amount < held then reason = 'committed ' .. int(amount) .. ', released ' .. int(held - amount) end
moveStatus(k, res, 'committed', now, now, amount, reason)
res.committedAmount = int(amount)
res.committedAt = int(now)
local json = saveRecord(k, res)
redis.call('HINCRBY', k.pool, 'held', int(-held))
redis.call('HINCRBY', k.pool, 'committed', int(amount))
addToLine(k, res.customerId, {held = -held, drawn = amount, settling = amount}, line)
return reply('OK', now, reservationPayload(json), expired)
