--[[
  Reserve: hold `amount` for a customer against the product pool and the
  customer's line, atomically, with idempotency and lazy expiry.

  KEYS[1] pool hash              <prefix>:{p}:pool
  KEYS[2] live holds zset        <prefix>:{p}:holds   (score: expiresAt ms)
  KEYS[3] credit line hash       <prefix>:{p}:line:<customerId>
  KEYS[4] idempotency record     <prefix>:{p}:idem:reserve:<key>
  KEYS[5] reservation hash       <prefix>:{p}:res:<reservationId>

  ARGV[1] productId
  ARGV[2] customerId
  ARGV[3] reservationId (fresh; used only if the hold is granted)
  ARGV[4] amount (minor units, integer >= 1)
  ARGV[5] ttlSeconds ('' = the product's holdTtlSeconds)
  ARGV[6] metadata JSON ('' = none)
  ARGV[7] request fingerprint (hash of the canonical request)
  ARGV[8] idempotency record TTL, seconds
  ARGV[9] reclaim limit: expired holds of this product returned per call (a refusal for
          quota returns up to 10x more first, see includes/reclaim)
  ARGV[10] idempotency key (kept on the reservation for support)

  Reply: {code, nowMs, replayed '0'|'1', payloadJson, holdsExpired}
    OK                         payload {reservation}
    TTL_OUT_OF_RANGE           ttlSeconds > holdTtlSeconds (HTTP 400; not stored)
    IDEMPOTENCY_KEY_REUSED     same key, other request (not stored)
    PRODUCT_NOT_FOUND, NO_CREDIT_LINE              (not stored)
    PRODUCT_CLOSED, PRODUCT_PAUSED, PRODUCT_NOT_OPEN, ACCOUNT_PENDING_ACTIVATION,
    ACCOUNT_FROZEN, ACCOUNT_CLOSED, AMOUNT_OUT_OF_RANGE, CUSTOMER_LIMIT_EXCEEDED,
    POOL_EXHAUSTED             payload {drawable, line}; stored and replayed
  OK and refusals are stored under KEYS[4]; a stored answer is replayed with
  replayed = '1' and changes nothing.

  "--- @stage" lines only mark steps for the benchmark, which times the
  script cut short before each (bench/baselines/redisBenchmark.ts).
]]
--- @include "includes/util"
--- @include "includes/reclaim"
--- @include "includes/views"
--- @include "includes/idempotency"

local poolKey, holdsKey, lineKey_, idemKey, resKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local customerId, reservationId = ARGV[2], ARGV[3]
local amount = tonumber(ARGV[4])
local fingerprint, idemTtl = ARGV[7], ARGV[8]

--- @stage clock; due holds returned
local now = nowMs()
local prefix = productPrefix(poolKey)
local reclaimLimit = tonumber(ARGV[9])
local moreDue = reclaimDue(prefix, poolKey, holdsKey, now, reclaimLimit) == reclaimLimit

--- @stage pool read; stored answer looked up
local pool = loadPool(poolKey)
local ttl = ARGV[5]
if pool and ttl ~= '' and tonumber(ttl) > tonumber(pool.holdTtlSeconds) then
  return reply('TTL_OUT_OF_RANGE', now, {holdTtlSeconds = pool.holdTtlSeconds}, false)
end

local stored = storedAnswer(idemKey, fingerprint, now)
if stored then return stored end

if not pool then return reply('PRODUCT_NOT_FOUND', now, {}, false) end
--- @stage line read; the contract's checks
local line = loadLine(lineKey_)
if not line then return reply('NO_CREDIT_LINE', now, {}, false) end

local blockers = blockersFor(pool, line, now, amount)
-- A refusal reports (and stores) drawable: it must count every due hold.
if #blockers > 0 and moreDue then
  reclaimBurst(prefix, poolKey, holdsKey, now, reclaimLimit)
  pool, line = loadPool(poolKey), loadLine(lineKey_)
  blockers = blockersFor(pool, line, now, amount)
end
if #blockers > 0 then
  local drawable = drawableFor(pool, line, now)
  return storeAnswer(idemKey, fingerprint, idemTtl, blockers[1][1], now, {
    drawable = int(drawable),
    retryAt = blockers[1][2] and int(blockers[1][2]) or nil,
    line = linePayload(pool, line, customerId, now),
    minAmount = pool.minAmount,
    maxAmount = pool.maxAmount,
    pauseReason = pool.pauseReason,
  })
end

--- @stage counters, status index, audit event
if ttl == '' then ttl = pool.holdTtlSeconds end
local expiresAt = now + tonumber(ttl) * 1000
redis.call('HINCRBY', poolKey, 'held', amount)
redis.call('HINCRBY', lineKey_, 'held', amount)
local reservation = {
  reservationId = reservationId, productId = ARGV[1], customerId = customerId, amount = int(amount),
  status = 'held', createdAt = int(now), expiresAt = int(expiresAt), committedAmount = '0',
  metadata = ARGV[6], attempts = '0', idempotencyKey = ARGV[10],
  eventIds = enterHeld(prefix, reservationId, expiresAt, now, amount),
}
--- @stage reservation record
local fields = {}
for field, value in pairs(reservation) do
  fields[#fields + 1] = field
  fields[#fields + 1] = value
end
redis.call('HSET', resKey, unpack(fields))
--- @stage stored answer; reply
return storeAnswer(idemKey, fingerprint, idemTtl, 'OK', now, {reservation = reservation})
