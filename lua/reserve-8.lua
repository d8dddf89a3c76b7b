--[[
  Reserve: hold `amount` for a customer against the product pool and the
  customer's line, atomically, with idempotency and lazy expiry.

  KEYS[1] pool                 <prefix>:{p}:pool             hash
  KEYS[2] records              <prefix>:{p}:res              hash reservationId -> record JSON
  KEYS[3] lines                <prefix>:{p}:lines            hash customerId -> line JSON
  KEYS[4] events               <prefix>:{p}:events           stream
  KEYS[5] status:held          <prefix>:{p}:status:held      zset (score: expiresAt ms)
  KEYS[6] status:expired       <prefix>:{p}:status:expired   zset (due holds reclaimed here)
  KEYS[7] idempotency          <prefix>:{p}:idem:reserve:<key>
  KEYS[8] bycustomer           <prefix>:{p}:bycustomer       zset (score 0) <customerId>:<createdAt 13 digits>:<id>

  ARGV[1] productId
  ARGV[2] customerId
  ARGV[3] reservationId (fresh; used only if the hold is granted)
  ARGV[4] amount (minor units, integer >= 1)
  ARGV[5] ttlSeconds ('' = the product's holdTtlSeconds)
  ARGV[6] metadata JSON ('' = none)
  ARGV[7] request fingerprint (hash of the canonical request)
  ARGV[8] TTL of a stored 2xx answer, seconds
  ARGV[9] reclaim limit: expired holds of this product returned per call (a refusal for
          quota returns up to 10x more first, see includes/expiry)
  ARGV[10] idempotency key (kept on the reservation for support)
  ARGV[11] TTL of a stored refusal, seconds
  ARGV[12] '1': a refusal is not stored (a sharded product's first try: on POOL_EXHAUSTED the
          engine borrows quota from other sub-pools and tries again, see src/engine/shardedEngine.ts)
  ARGV[13] sharded product: what other sub-pools could lend this line (and quota in transit), counted
          in a refusal's drawable only, never in the decision ('' = 0)

  Reply: {code, nowMs, replayed '0'|'1', payloadJson, holdsExpired}
    OK                         payload {reservation}
    TTL_OUT_OF_RANGE           ttlSeconds > holdTtlSeconds (HTTP 400; not stored)
    IDEMPOTENCY_KEY_REUSED     same key, other request (not stored)
    PRODUCT_NOT_FOUND, NO_CREDIT_LINE              (not stored)
    PRODUCT_CLOSED, PRODUCT_PAUSED, PRODUCT_NOT_OPEN, ACCOUNT_PENDING_ACTIVATION,
    ACCOUNT_FROZEN, ACCOUNT_CLOSED, AMOUNT_OUT_OF_RANGE, CUSTOMER_LIMIT_EXCEEDED,
    POOL_EXHAUSTED             payload {drawable, line}; stored and replayed
  OK and refusals are stored under KEYS[7]; a stored answer is replayed with
  replayed = '1' and changes nothing.
]]
--- @include "includes/reply"
--- @include "includes/expiry"
--- @include "includes/views"
--- @include "includes/idempotency"
--- @include "includes/bycustomer"

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], events = KEYS[4], held = KEYS[5],
  expired = KEYS[6], idempotency = KEYS[7], bycustomer = KEYS[8]}
local customerId, reservationId = ARGV[2], ARGV[3]
local amount = ARGV[4] + 0
local request = {fingerprint = ARGV[7], okTtl = ARGV[8], refusalTtl = ARGV[11]}
local reclaimLimit = ARGV[9] + 0

local now = nowMs()
local looked, expired = reclaimDue(k, now, reclaimLimit)
local moreDue = looked == reclaimLimit

local pool = loadPoolForDecision(k)
local ttl = ARGV[5]
if pool and ttl ~= '' and ttl + 0 > pool.holdTtlSeconds + 0 then
  return reply('TTL_OUT_OF_RANGE', now, {holdTtlSeconds = pool.holdTtlSeconds}, expired)
end

local stored = storedAnswer(k, request, now, expired)
if stored then return stored end

if not pool then return reply('PRODUCT_NOT_FOUND', now, {}, expired) end
local line = loadLine(k, customerId)
if not line then return reply('NO_CREDIT_LINE', now, {}, expired) end

local blockers = blockersFor(pool, line, now, amount)
-- A refusal reports (and stores) drawable: it must count every due hold.
if #blockers > 0 and moreDue then
  expired = expired + reclaimBurst(k, now, reclaimLimit)
  pool, line = loadPoolForDecision(k), loadLine(k, customerId)
  blockers = blockersFor(pool, line, now, amount)
end
if #blockers > 0 then
  -- A sharded product's drawable counts what borrowing would bring (the decision above did not).
  pool.borrowable = ARGV[13]
  local drawable = drawableFor(pool, line, now)
  if ARGV[12] == '1' then
    local details = {drawable = int(drawable), line = linePayload(pool, line, customerId, now)}
    return reply(blockers[1][1], now, details, expired)
  end
  completePool(k, pool) -- pauseReason, whatever the status
  return storeAnswer(k, request, blockers[1][1], now, {
    drawable = int(drawable),
    retryAt = blockers[1][2] and int(blockers[1][2]) or nil,
    line = linePayload(pool, line, customerId, now),
    minAmount = pool.minAmount,
    maxAmount = pool.maxAmount,
    pauseReason = pool.pauseReason,
  }, expired)
end

if ttl == '' then ttl = pool.holdTtlSeconds end
local createdAt, expiresAt = int(now), int(now + ttl * 1000)
local amountString = int(amount)
redis.call('HINCRBY', k.pool, 'held', amountString)
line.held = int(line.held + amount)
saveLine(k, customerId, line)
local eventId = enterHeld(k, reservationId, expiresAt, amount, now)
-- The per-customer index (newest first by lex order; see includes/bycustomer).
redis.call('ZADD', k.bycustomer, 'NX', '0', byCustomerMember(customerId, now, reservationId))
local json = newHoldJson(reservationId, ARGV[1], customerId, amountString, createdAt, expiresAt, ARGV[6], ARGV[10],
  eventId)
redis.call('HSET', k.records, reservationId, json)
return storeAnswer(k, request, 'OK', now, reservationPayload(json), expired)
