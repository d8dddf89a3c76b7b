--[[
  Read one reservation (a due hold is expired first, so the answer is never a
  stale "held").

  KEYS[1] pool hash          <prefix>:{p}:pool
  KEYS[2] live holds zset    <prefix>:{p}:holds
  KEYS[3] reservation hash   <prefix>:{p}:res:<reservationId>

  ARGV[1] reservationId

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                   payload {reservation}
    PRODUCT_NOT_FOUND, RESERVATION_NOT_FOUND
]]
--- @include "includes/util"
--- @include "includes/reclaim"
--- @include "includes/reservations"

local now = nowMs()
local res, err = loadReservation(productPrefix(KEYS[1]), KEYS[1], KEYS[3], ARGV[1], now)
if err then return reply(err, now, {}, false) end
return reply('OK', now, {reservation = res}, false)
