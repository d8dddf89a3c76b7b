--[[
  Numbers and the clock.

  Lua numbers are doubles, exact up to 2^53, and every amount and counter
  stays below that (the API caps amounts at 2^53-1 and counters are bounded by
  capacity / limit). tostring() and cjson print only 14 digits, so numbers are
  stored and leave a script as strings made by int().
]]
local function int(n)
  return string.format('%d', n)
end

-- '' / nil / false -> default, else the number.
local function numOr(value, default)
  if value == false or value == nil or value == '' then return default end
  return tonumber(value)
end

-- The Redis server's clock, in milliseconds: the only clock expiry decisions use.
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
