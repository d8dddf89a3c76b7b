--[[
  Credit lines: one field per customer in the product's lines hash (k.lines),
  field = customerId, value = the line as JSON: config (limit, status,
  statusReason, tier), counters (held, drawn, settling, repaid) and
  createdAt / updatedAt, every number a string made by int().
]]
--- @include "includes/numbers"

local LINE_FIELDS = {'limit', 'status', 'statusReason', 'tier', 'held', 'drawn', 'settling',
  'createdAt', 'updatedAt'}

-- The line with every LINE_FIELDS entry present ('' when unset), or nil when
-- the customer has no configured line.
local function loadLine(k, customerId)
  local json = redis.call('HGET', k.lines, customerId)
  if not json then return nil end
  local line = cjson.decode(json)
  if line.limit == nil then return nil end
  for _, f in ipairs(LINE_FIELDS) do
    if line[f] == nil then line[f] = '' end
  end
  return line
end

local function saveLine(k, customerId, line)
  redis.call('HSET', k.lines, customerId, cjson.encode(line))
end

-- Adds deltas ({held = -5, drawn = 3}) to a line's counters. Like HINCRBY on a
-- missing hash, a missing line gets an entry with the counters only (it stays
-- "no credit line" for reserves, and the audit reports it).
local function addToLine(k, customerId, deltas)
  local json = redis.call('HGET', k.lines, customerId)
  local line = json and cjson.decode(json) or {}
  for field, delta in pairs(deltas) do
    line[field] = int(numOr(line[field], 0) + delta)
  end
  saveLine(k, customerId, line)
end
