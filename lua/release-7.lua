--[[
  Release: end a live hold and return its amount to the pool and the line
  at once. Idempotent by state: releasing a released hold answers it again;
  releasing an expired hold answers it with status "expired".

  KEYS[1] pool                 <prefix>:{p}:pool
  KEYS[2] records              <prefix>:{p}:res
  KEYS[3] lines                <prefix>:{p}:lines
  KEYS[4] events               <prefix>:{p}:events
  KEYS[5] status:held          <prefix>:{p}:status:held
  KEYS[6] status:expired       <prefix>:{p}:status:expired
  KEYS[7] status:released      <prefix>:{p}:status:released

  ARGV[1] reservationId

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                             payload {reservation} (status released or expired)
    PRODUCT_NOT_FOUND, RESERVATION_NOT_FOUND
    RESERVATION_ALREADY_COMMITTED  payload {reservation}
]]
--- @include "includes/reply"
--- @include "includes/reservation-lookup"

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], events = KEYS[4], held = KEYS[5],
  expired = KEYS[6], released = KEYS[7]}
local now = nowMs()

local res, err, expired = loadReservation(k, ARGV[1], now)
if err then return reply(err, now, {}, expired) end
if COMMITTED_STATES[res.status] then
  return reply('RESERVATION_ALREADY_COMMITTED', now, {reservation = res}, expired)
end
if res.status == 'held' then
  return reply('OK', now, reservationPayload(endHold(k, res, now, 'released', 'released by the client')), expired)
end
return reply('OK', now, {reservation = res}, expired)
