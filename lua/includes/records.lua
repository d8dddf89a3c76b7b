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

--[[
  A new hold's record JSON, built as a string: byte for byte what
  cjson.encode gave for the table reserve used to build ({reservationId,
  productId, customerId, amount, status = 'held', createdAt, expiresAt,
  committedAmount = '0', metadata, attempts = '0', idempotencyKey} and then
  eventIds), so stored records do not change: the same keys in cjson's order
  (the table's hash order, fixed for that set of keys) and every caller-given
  string escaped by cjson itself. Building the table only to encode it was
  ~1 µs of every reserve. amount, createdAt and expiresAt are int() strings,
  eventId an XADD id (digits and '-'): nothing to escape.
  test/engine/record-json.test.ts checks it against cjson.encode.
]]
local function newHoldJson(reservationId, productId, customerId, amount, createdAt, expiresAt, metadata,
                           idempotencyKey, eventId)
  return '{"amount":"' .. amount .. '","committedAmount":"0","idempotencyKey":' .. cjson.encode(idempotencyKey) ..
    ',"metadata":' .. cjson.encode(metadata) .. ',"attempts":"0","createdAt":"' .. createdAt ..
    '","reservationId":' .. cjson.encode(reservationId) .. ',"productId":' .. cjson.encode(productId) ..
    ',"status":"held","expiresAt":"' .. expiresAt .. '","eventIds":"' .. eventId ..
    '","customerId":' .. cjson.encode(customerId) .. '}'
end
