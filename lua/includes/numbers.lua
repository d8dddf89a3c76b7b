--[[
  Numbers and the clock.

  Lua numbers are doubles, exact up to 2^53, and every amount and counter
  stays below that (the API caps amounts at 2^53-1 and counters are bounded by
  capacity / limit). tostring() and cjson print only 14 digits, so numbers are
  stored and leave a script as strings made by int().

  Cost (issue 11, bench/lua/attribution.mjs): a number passed to redis.call is
  printed by Redis with snprintf('%.17g'), ~0.3 µs each, and tostring() or
  `..` of a number uses '%.14g', ~1 µs; int() ('%d') is ~0.2 µs. So
  redis.call arguments are strings (int(), or constants such as '0'), never
  numbers, and a string that holds a number is read with `s + 0` where it is
  known to be numeric (one conversion; tonumber() converts twice).
]]

-- The last value printed and its string: a call prints its clock several
-- times (record, event, reply, stored answer). A cache only, no behaviour.
local lastInt, lastIntString = 0, '0'

local function int(n)
  if n ~= lastInt then
    lastInt = n
    lastIntString = string.format('%d', n)
  end
  return lastIntString
end

-- '' / nil / false -> default, else the number.
local function numOr(value, default)
  if value == false or value == nil or value == '' then return default end
  return tonumber(value)
end

-- The Redis server's clock, in milliseconds: the only clock expiry decisions use.
local function nowMs()
  local t = redis.call('TIME')
  local us = t[2] + 0
  return t[1] * 1000 + (us - us % 1000) / 1000
end
