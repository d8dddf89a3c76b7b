--[[
  Commit: turn a live hold into a draw. Committing less than the hold
  releases the rest at once. Idempotent by state: committing again with no
  amount, or with the amount already committed, answers the current state.

  KEYS[1] pool hash          <prefix>:{p}:pool
  KEYS[2] live holds zset    <prefix>:{p}:holds
  KEYS[3] reservation hash   <prefix>:{p}:res:<reservationId>
  (the line key is built from the reservation's customerId: same prefix, same slot)

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
--- @include "includes/util"
--- @include "includes/reclaim"
--- @include "includes/views"
--- @include "includes/reservations"

local poolKey, resKey = KEYS[1], KEYS[3]
local reservationId, requested = ARGV[1], ARGV[2]
local now = nowMs()
local prefix = productPrefix(poolKey)

local res, err = loadReservation(prefix, poolKey, resKey, reservationId, now)
if err then return reply(err, now, {}, false) end

if res.status == 'expired' then return reply('RESERVATION_EXPIRED', now, {reservation = res}, false) end
if res.status == 'released' then return reply('RESERVATION_RELEASED', now, {reservation = res}, false) end
if COMMITTED_STATES[res.status] then
  if requested == '' or tonumber(requested) == tonumber(res.committedAmount) then
    return reply('OK', now, {reservation = res}, false)
  end
  return reply('RESERVATION_ALREADY_COMMITTED', now, {reservation = res}, false)
end

local lKey = lineKey(prefix, res.customerId)
local line = loadLine(lKey)
local statusCode = line and LINE_STATUS_BLOCKER[line.status]
if statusCode == 'ACCOUNT_FROZEN' or statusCode == 'ACCOUNT_CLOSED' then
  return reply(statusCode, now, {reservation = res, statusReason = line.statusReason}, false)
end

local held = tonumber(res.amount)
local amount = held
if requested ~= '' then amount = tonumber(requested) end
if amount > held then return reply('COMMIT_EXCEEDS_HOLD', now, {reservation = res}, false) end

local reason = 'committed'
if amount < held then reason = 'committed ' .. int(amount) .. ', released ' .. int(held - amount) end
moveStatus(prefix, resKey, reservationId, 'held', 'committed', now, now, amount, reason)
redis.call('HINCRBY', poolKey, 'held', -held)
redis.call('HINCRBY', poolKey, 'committed', amount)
redis.call('HINCRBY', lKey, 'held', -held)
redis.call('HINCRBY', lKey, 'drawn', amount)
redis.call('HINCRBY', lKey, 'settling', amount)
redis.call('HSET', resKey, 'committedAmount', int(amount), 'committedAt', int(now))
return reply('OK', now, {reservation = toMap(redis.call('HGETALL', resKey))}, false)
