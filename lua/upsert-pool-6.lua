--[[
  Create, replace or patch a product pool's config. Counters (held,
  committed, settled) are always kept.

  KEYS[1] pool                 <prefix>:{p}:pool
  KEYS[2] records              <prefix>:{p}:res
  KEYS[3] lines                <prefix>:{p}:lines
  KEYS[4] events               <prefix>:{p}:events
  KEYS[5] status:held          <prefix>:{p}:status:held
  KEYS[6] status:expired       <prefix>:{p}:status:expired

  ARGV[1] mode: 'put' (unlisted fields take their defaults) | 'patch' (only listed fields change)
  ARGV[2] reclaim limit
  ARGV[3] webhooks: '1' records product.status_changed when a write of status changes an
          existing product's status, '' records nothing
  ARGV[4..] field, value pairs; fields: capacity, minAmount, maxAmount,
          holdTtlSeconds, opensAt, closesAt (ms), status, pauseReason,
          resumeAt (ms), reserveTiers (comma-joined), reserveAmount.
          '' clears an optional field. Each value is already valid on its own.
          A patch that sets status starts the pause description afresh:
          pauseReason and resumeAt are what it gives, cleared when it gives none
          (so a new pause never inherits a past resumeAt that would reopen it at once).

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    CREATED | UPDATED   payload {pool}
    PRODUCT_NOT_FOUND   patch of a product that does not exist
    INVALID_CONFIG      payload {field, reason}: the merged config is inconsistent
]]
--- @include "includes/reply"
--- @include "includes/expiry"
--- @include "includes/views"
--- @include "includes/webhooks"

local DEFAULTS = {capacity = '0', minAmount = '1', maxAmount = '', holdTtlSeconds = '300',
  opensAt = '', closesAt = '', status = 'open', pauseReason = '', resumeAt = '',
  reserveTiers = '', reserveAmount = '0'}

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], events = KEYS[4], held = KEYS[5],
  expired = KEYS[6]}
local mode = ARGV[1]
local now = nowMs()
local _, expired = reclaimDue(k, now, tonumber(ARGV[2]))
local existing = loadPool(k)
if mode == 'patch' and not existing then return reply('PRODUCT_NOT_FOUND', now, {}, expired) end

local config = {}
for field, default in pairs(DEFAULTS) do
  if mode == 'patch' then config[field] = existing[field] else config[field] = default end
end
for i = 4, #ARGV, 2 do
  if ARGV[i] == 'status' then config.pauseReason, config.resumeAt = '', '' end
end
for i = 4, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if DEFAULTS[field] == nil then error('upsert-pool: unknown field ' .. field) end
  if value == '' and (field == 'minAmount' or field == 'holdTtlSeconds' or field == 'reserveAmount') then
    value = DEFAULTS[field]
  end
  config[field] = value
end

local maxAmount = numOr(config.maxAmount, nil)
if maxAmount and maxAmount < tonumber(config.minAmount) then
  return reply('INVALID_CONFIG', now, {field = 'maxAmount', reason = 'maxAmount is below minAmount'}, expired)
end
local opensAt, closesAt = numOr(config.opensAt, nil), numOr(config.closesAt, nil)
if opensAt and closesAt and closesAt <= opensAt then
  return reply('INVALID_CONFIG', now, {field = 'closesAt', reason = 'closesAt is not after opensAt'}, expired)
end
if tonumber(config.reserveAmount) > 0 and config.reserveTiers == '' then
  local invalid = {field = 'priorityReserve', reason = 'a priority reserve needs at least one tier'}
  return reply('INVALID_CONFIG', now, invalid, expired)
end

local args = {}
for field, value in pairs(config) do
  args[#args + 1] = field
  args[#args + 1] = value
end
args[#args + 1] = 'updatedAt'
args[#args + 1] = int(now)
if not existing then
  for _, counter in ipairs({'held', 'committed', 'settled'}) do
    args[#args + 1] = counter
    args[#args + 1] = '0'
  end
  args[#args + 1] = 'createdAt'
  args[#args + 1] = int(now)
end
redis.call('HSET', k.pool, unpack(args))
local pool = poolPayload(loadPool(k), now)
if ARGV[3] == '1' and existing and existing.status ~= config.status then
  recordWebhook(k, 'product.status_changed', now, cjson.encode(pool))
end
return reply(existing and 'UPDATED' or 'CREATED', now, {pool = pool}, expired)
