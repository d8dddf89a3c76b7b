--[[
  Sweeper step for one product: expire up to `limit` due holds, and delete
  the records of released/expired holds that ended more than 7 days ago
  (their entry time is their score in status:released / status:expired), at
  most PURGE_BATCH of each per call.

  KEYS[1] pool                 <prefix>:{p}:pool
  KEYS[2] records              <prefix>:{p}:res
  KEYS[3] lines                <prefix>:{p}:lines
  KEYS[4] events               <prefix>:{p}:events
  KEYS[5] status:held          <prefix>:{p}:status:held
  KEYS[6] status:expired       <prefix>:{p}:status:expired
  KEYS[7] status:released      <prefix>:{p}:status:released
  KEYS[8] bycustomer           <prefix>:{p}:bycustomer       (purged records leave it too)

  ARGV[1] limit

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK   payload {reclaimed, remaining, purged}: remaining = due holds still left;
         purged = ended records deleted
]]
--- @include "includes/reply"
--- @include "includes/expiry"
--- @include "includes/bycustomer"

local RETENTION_MS = 7 * 24 * 3600 * 1000 -- released/expired records are kept 7 days for reads and audits
local PURGE_BATCH = 1000                  -- also bounds unpack()

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], events = KEYS[4], held = KEYS[5],
  expired = KEYS[6], released = KEYS[7], bycustomer = KEYS[8]}
local now = nowMs()
local limit = tonumber(ARGV[1])
local reclaimed, expired = reclaimDue(k, now, limit)
local remaining = redis.call('ZCOUNT', k.held, '-inf', now)

local purged = 0
for _, ended in ipairs({'released', 'expired'}) do
  local batch = math.min(limit, PURGE_BATCH)
  local old = redis.call('ZRANGEBYSCORE', k[ended], '-inf', now - RETENTION_MS, 'LIMIT', 0, batch)
  if #old > 0 then
    local members = {}
    for _, json in ipairs(redis.call('HMGET', k.records, unpack(old))) do
      if json then
        local r = cjson.decode(json)
        members[#members + 1] = byCustomerMember(r.customerId, tonumber(r.createdAt), r.reservationId)
      end
    end
    if #members > 0 then redis.call('ZREM', k.bycustomer, unpack(members)) end
    redis.call('HDEL', k.records, unpack(old))
    redis.call('ZREM', k[ended], unpack(old))
    purged = purged + #old
  end
end
return reply('OK', now, {reclaimed = int(reclaimed), remaining = int(remaining), purged = int(purged)}, expired)
