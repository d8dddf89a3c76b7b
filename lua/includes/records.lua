--[[
  Reservation records: one field per reservation in the product's records
  hash (k.records), field = reservationId, value = the record as JSON (every
  number a string made by int()). A hash, not a key per record, so every
  script can name it in KEYS even when it discovers the reservation at run
  time (expiry).
]]

local function loadRecord(k, reservationId)
  local json = redis.call('HGET', k.records, reservationId)
  if not json then return nil end
  return cjson.decode(json)
end

-- Saves the record; returns its JSON, which replies reuse (reservationPayload) instead of encoding it again.
local function saveRecord(k, record)
  local json = cjson.encode(record)
  redis.call('HSET', k.records, record.reservationId, json)
  return json
end

-- The payload {reservation = <record>} from the record's stored JSON.
local function reservationPayload(json)
  return '{"reservation":' .. json .. '}'
end
