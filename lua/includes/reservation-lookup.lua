--[[
  Loading one reservation for the per-reservation scripts (commit, release,
  read, settlement): a hold past its expiresAt is expired on the spot, so no
  caller ever sees a stale "held".
]]
--- @include "includes/records"
--- @include "includes/expiry"

local COMMITTED_STATES = {committed = true, settled = true, settlement_unknown = true, reversed = true}

-- Returns (record or nil, errorCode or nil, holds expired: 0 or 1).
local function loadReservation(k, reservationId, now)
  if redis.call('EXISTS', k.pool) == 0 then return nil, 'PRODUCT_NOT_FOUND', 0 end
  local record = loadRecord(k, reservationId)
  if not record then return nil, 'RESERVATION_NOT_FOUND', 0 end
  if record.status == 'held' and now >= record.expiresAt + 0 then
    endHold(k, record, now, 'expired', 'hold expired')
    return record, nil, 1
  end
  return record, nil, 0
end
