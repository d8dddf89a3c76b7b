--[[
  Release: end a live hold and return its amount to the pool and the line
  at once. Idempotent by state: releasing a released hold answers it again;
  releasing an expired hold answers it with status "expired".

  KEYS[1] pool hash          <prefix>:{p}:pool
  KEYS[2] live holds zset    <prefix>:{p}:holds
  KEYS[3] reservation hash   <prefix>:{p}:res:<reservationId>

  ARGV[1] reservationId

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                             payload {reservation} (status released or expired)
    PRODUCT_NOT_FOUND, RESERVATION_NOT_FOUND
    RESERVATION_ALREADY_COMMITTED  payload {reservation}
]]
--- @include "includes/util"
--- @include "includes/reclaim"
--- @include "includes/reservations"

local poolKey, resKey = KEYS[1], KEYS[3]
local reservationId = ARGV[1]
local now = nowMs()
local prefix = productPrefix(poolKey)

local res, err = loadReservation(prefix, poolKey, resKey, reservationId, now)
if err then return reply(err, now, {}, false) end
if COMMITTED_STATES[res.status] then
  return reply('RESERVATION_ALREADY_COMMITTED', now, {reservation = res}, false)
end
if res.status == 'held' then
  endHold(prefix, poolKey, resKey, reservationId, now, 'released', 'released by the client')
  res = toMap(redis.call('HGETALL', resKey))
end
return reply('OK', now, {reservation = res}, false)
