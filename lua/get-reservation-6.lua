--[[
  Read one reservation (a due hold is expired first, so the answer is never a
  stale "held").

  KEYS[1] pool                 <prefix>:{p}:pool
  KEYS[2] records              <prefix>:{p}:res
  KEYS[3] lines                <prefix>:{p}:lines
  KEYS[4] events               <prefix>:{p}:events
  KEYS[5] status:held          <prefix>:{p}:status:held
  KEYS[6] status:expired       <prefix>:{p}:status:expired

  ARGV[1] reservationId

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                   payload {reservation}
    PRODUCT_NOT_FOUND, RESERVATION_NOT_FOUND
]]
--- @include "includes/reply"
--- @include "includes/reservation-lookup"

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], events = KEYS[4], held = KEYS[5],
  expired = KEYS[6]}
local now = nowMs()
local res, err, expired = loadReservation(k, ARGV[1], now)
if err then return reply(err, now, {}, expired) end
return reply('OK', now, {reservation = res}, expired)
