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
  -- LINE_FIELDS but limit, unrolled (a loop with ipairs costs more than the checks, on every reserve):
  -- keep in step with LINE_FIELDS.
  if line.status == nil then line.status = '' end
  if line.statusReason == nil then line.statusReason = '' end
  if line.tier == nil then line.tier = '' end
  if line.held == nil then line.held = '' end
  if line.drawn == nil then line.drawn = '' end
  if line.settling == nil then line.settling = '' end
  if line.createdAt == nil then line.createdAt = '' end
  if line.updatedAt == nil then line.updatedAt = '' end
  return line
end

local function saveLine(k, customerId, line)
  redis.call('HSET', k.lines, customerId, cjson.encode(line))
end

-- Adds deltas ({held = -5, drawn = 3}) to a line's counters. Like HINCRBY on a
-- missing hash, a missing line gets an entry with the counters only (it stays
-- "no credit line" for reserves, and the audit reports it). `loaded`: the line
-- as loadLine returned it in this same call, nothing having written it since
-- (commit reads it for its status check), so it is not read and decoded twice.
local function addToLine(k, customerId, deltas, loaded)
  local line = loaded
  if not line then
    local json = redis.call('HGET', k.lines, customerId)
    line = json and cjson.decode(json) or {}
  end
  for field, delta in pairs(deltas) do
    line[field] = int(numOr(line[field], 0) + delta)
  end
  saveLine(k, customerId, line)
end
