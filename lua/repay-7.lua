--[[
  Repayment: restore a line by `amount` of settled money (at most
  drawn - settling). Repayments do not restore the product pool. The line's
  `repaid` counter sums them, so the invariant audit (audit-product-8) can
  recompute `drawn` from the reservation records.

  KEYS[1] pool                 <prefix>:{p}:pool
  KEYS[2] records              <prefix>:{p}:res
  KEYS[3] lines                <prefix>:{p}:lines
  KEYS[4] events               <prefix>:{p}:events
  KEYS[5] status:held          <prefix>:{p}:status:held
  KEYS[6] status:expired       <prefix>:{p}:status:expired
  KEYS[7] idempotency          <prefix>:{p}:idem:repay:<key>

  ARGV[1] customerId
  ARGV[2] amount (minor units, integer >= 1)
  ARGV[3] request fingerprint
  ARGV[4] TTL of a stored 2xx answer, seconds
  ARGV[5] reclaim limit
  ARGV[6] TTL of a stored refusal, seconds
  ARGV[7] sharded product: what other sub-pools could lend this line, counted in the answer's
          drawable ('' = 0; see src/engine/shardedEngine.ts)

  Reply: {code, nowMs, replayed '0'|'1', payloadJson, holdsExpired}
    OK                         payload {line}; stored and replayed
    REPAYMENT_EXCEEDS_DRAWN    payload {repayable, line}; stored and replayed
    IDEMPOTENCY_KEY_REUSED     (not stored)
    PRODUCT_NOT_FOUND, NO_CREDIT_LINE  (not stored)
]]
--- @include "includes/reply"
--- @include "includes/expiry"
--- @include "includes/views"
--- @include "includes/idempotency"

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], events = KEYS[4], held = KEYS[5],
  expired = KEYS[6], idempotency = KEYS[7]}
local customerId, amount = ARGV[1], tonumber(ARGV[2])
local request = {fingerprint = ARGV[3], okTtl = ARGV[4], refusalTtl = ARGV[6]}
local now = nowMs()
-- The answer shows drawable: every due hold counted, as in a read.
local expired = reclaimForAnswer(k, now, tonumber(ARGV[5]))

local stored = storedAnswer(k, request, now, expired)
if stored then return stored end
local pool = loadPool(k)
if pool then pool.borrowable = ARGV[7] end
if not pool then return reply('PRODUCT_NOT_FOUND', now, {}, expired) end
local line = loadLine(k, customerId)
if not line then return reply('NO_CREDIT_LINE', now, {}, expired) end

local repayable = tonumber(line.drawn) - tonumber(line.settling)
if amount > repayable then
  return storeAnswer(k, request, 'REPAYMENT_EXCEEDS_DRAWN', now,
    {repayable = int(repayable), line = linePayload(pool, line, customerId, now)}, expired)
end
line.drawn = int(tonumber(line.drawn) - amount)
line.repaid = int(numOr(line.repaid, 0) + amount)
saveLine(k, customerId, line)
return storeAnswer(k, request, 'OK', now, {line = linePayload(pool, line, customerId, now)}, expired)
