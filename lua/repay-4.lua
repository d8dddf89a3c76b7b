--[[
  Repayment: restore a line by `amount` of settled money (at most
  drawn - settling). Repayments do not restore the product pool. The line's
  `repaid` counter sums them, so the invariant audit (audit-product-2) can
  recompute `drawn` from the reservation records.

  KEYS[1] pool hash              <prefix>:{p}:pool
  KEYS[2] live holds zset        <prefix>:{p}:holds
  KEYS[3] credit line hash       <prefix>:{p}:line:<customerId>
  KEYS[4] idempotency record     <prefix>:{p}:idem:repay:<key>

  ARGV[1] customerId
  ARGV[2] amount (minor units, integer >= 1)
  ARGV[3] request fingerprint
  ARGV[4] idempotency record TTL, seconds
  ARGV[5] reclaim limit

  Reply: {code, nowMs, replayed '0'|'1', payloadJson, holdsExpired}
    OK                         payload {line}; stored and replayed
    REPAYMENT_EXCEEDS_DRAWN    payload {repayable, line}; stored and replayed
    IDEMPOTENCY_KEY_REUSED     (not stored)
    PRODUCT_NOT_FOUND, NO_CREDIT_LINE  (not stored)
]]
--- @include "includes/util"
--- @include "includes/reclaim"
--- @include "includes/views"
--- @include "includes/idempotency"

local poolKey, holdsKey, lKey, idemKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local customerId, amount, fingerprint, idemTtl = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local now = nowMs()
-- The answer shows drawable: every due hold counted, as in a read.
reclaimForAnswer(poolKey, holdsKey, now, tonumber(ARGV[5]))

local stored = storedAnswer(idemKey, fingerprint, now)
if stored then return stored end
local pool = loadPool(poolKey)
if not pool then return reply('PRODUCT_NOT_FOUND', now, {}, false) end
local line = loadLine(lKey)
if not line then return reply('NO_CREDIT_LINE', now, {}, false) end

local repayable = tonumber(line.drawn) - tonumber(line.settling)
if amount > repayable then
  return storeAnswer(idemKey, fingerprint, idemTtl, 'REPAYMENT_EXCEEDS_DRAWN', now,
    {repayable = int(repayable), line = linePayload(pool, line, customerId, now)})
end
redis.call('HINCRBY', lKey, 'drawn', -amount)
redis.call('HINCRBY', lKey, 'repaid', amount)
return storeAnswer(idemKey, fingerprint, idemTtl, 'OK', now,
  {line = linePayload(pool, loadLine(lKey), customerId, now)})
