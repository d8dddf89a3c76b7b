--[[
  Sweeper step: reclaim up to `limit` due holds of one product, and drop
  index entries of released/expired holds whose records have been removed.

  KEYS[1] pool hash          <prefix>:{p}:pool
  KEYS[2] live holds zset    <prefix>:{p}:holds

  ARGV[1] limit

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK   payload {reclaimed, remaining}: remaining = due holds still left
]]
--- @include "includes/util"
--- @include "includes/reclaim"

local now = nowMs()
local reclaimed = reclaimDue(productPrefix(KEYS[1]), KEYS[1], KEYS[2], now, tonumber(ARGV[1]))
local remaining = redis.call('ZCOUNT', KEYS[2], '-inf', now)
local prefix = productPrefix(KEYS[1])
for _, ended in ipairs({'released', 'expired'}) do
  redis.call('ZREMRANGEBYSCORE', statusKey(prefix, ended), '-inf', now - RETENTION_SECONDS * 1000)
end
return reply('OK', now, {reclaimed = int(reclaimed), remaining = int(remaining)}, false)
