--[[
  Shared helpers for every script.

  Numbers: Lua numbers are doubles, exact up to 2^53, and every amount and
  counter stays below that (the API caps amounts at 2^53-1 and counters are
  bounded by capacity / limit). tostring() and cjson print only 14 digits, so
  numbers leave a script as strings made by int().
]]
local RETENTION_SECONDS = 604800 -- released/expired holds are kept 7 days for reads and audits

local function int(n)
  return string.format('%d', n)
end

-- The Redis server's clock, in milliseconds: the only clock expiry decisions use.
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function numOr(value, default)
  if value == false or value == nil or value == '' then return default end
  return tonumber(value)
end

local function strOrNil(value)
  if value == false or value == nil or value == '' then return nil end
  return value
end

-- Every key of a product starts with the pool key's prefix ("<prefix>:{<productId>}:");
-- keys.ts builds the same layout for the keys TypeScript passes in.
local function productPrefix(poolKey)
  return string.sub(poolKey, 1, #poolKey - 4)
end

local function reservationKey(prefix, reservationId)
  return prefix .. 'res:' .. reservationId
end

local function lineKey(prefix, customerId)
  return prefix .. 'line:' .. customerId
end

-- Flat HGETALL reply -> table.
local function toMap(flat)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end

-- Holds this call expired (includes/reclaim counts them): every reply reports
-- it, so lazy returns inside any script are counted in metrics, not only the sweeper's.
local holdsExpiredHere = 0

-- Every script answers {code, nowMs, replayed, payloadJson, holdsExpired}.
local function reply(code, now, payload, replayed)
  return {code, int(now), replayed and '1' or '0', cjson.encode(payload or {}), int(holdsExpiredHere)}
end
