--[[
  Reservation lookups shared by the per-reservation scripts.
]]
local COMMITTED_STATES = {committed = true, settled = true, settlement_unknown = true, reversed = true}

-- Loads a reservation of this product; a hold past its expiresAt is expired
-- on the spot, so no caller ever sees a stale "held".
-- Returns (map or nil, errorCode or nil).
local function loadReservation(prefix, poolKey, resKey, reservationId, now)
  if redis.call('EXISTS', poolKey) == 0 then return nil, 'PRODUCT_NOT_FOUND' end
  local status = redis.call('HGET', resKey, 'status')
  if not status then return nil, 'RESERVATION_NOT_FOUND' end
  if status == 'held' and now >= tonumber(redis.call('HGET', resKey, 'expiresAt')) then
    endHold(prefix, poolKey, resKey, reservationId, now, 'expired', 'hold expired')
  end
  return toMap(redis.call('HGETALL', resKey)), nil
end
