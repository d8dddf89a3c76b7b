--[[
  Pool and line views: the one place that decides what is available, what a
  reserve would accept (drawable) and what blocks it. Reserve, the line read
  and repayments all use these, so a display never disagrees with a decision.
  Pure functions of the pool and line tables, but for loadPool (k.pool); lines
  come from includes/lines.
]]
--- @include "includes/numbers"
--- @include "includes/lines"

local POOL_FIELDS = {'capacity', 'held', 'committed', 'settled', 'minAmount', 'maxAmount',
  'holdTtlSeconds', 'opensAt', 'closesAt', 'status', 'pauseReason', 'resumeAt',
  'reserveTiers', 'reserveAmount', 'createdAt', 'updatedAt'}

-- The pool (every POOL_FIELDS entry, '' when unset), or nil when the product does not exist.
-- The table is built by one constructor (sized once) rather than field by field (five resizes): POOL_FIELDS
-- spelt out, in its order.
local function loadPool(k)
  local v = redis.call('HMGET', k.pool, 'capacity', 'held', 'committed', 'settled', 'minAmount', 'maxAmount',
    'holdTtlSeconds', 'opensAt', 'closesAt', 'status', 'pauseReason', 'resumeAt', 'reserveTiers', 'reserveAmount',
    'createdAt', 'updatedAt')
  if not v[1] then return nil end
  return {capacity = v[1], held = v[2] or '', committed = v[3] or '', settled = v[4] or '', minAmount = v[5] or '',
    maxAmount = v[6] or '', holdTtlSeconds = v[7] or '', opensAt = v[8] or '', closesAt = v[9] or '',
    status = v[10] or '', pauseReason = v[11] or '', resumeAt = v[12] or '', reserveTiers = v[13] or '',
    reserveAmount = v[14] or '', createdAt = v[15] or '', updatedAt = v[16] or ''}
end

-- The rest of a pool that loadPoolForDecision left out (nil there); a no-op on a complete pool.
local function completePool(k, pool)
  if pool.pauseReason ~= nil then return pool end
  local v = redis.call('HMGET', k.pool, 'settled', 'pauseReason', 'resumeAt', 'reserveTiers', 'createdAt', 'updatedAt')
  pool.settled, pool.pauseReason, pool.resumeAt = v[1] or '', v[2] or '', v[3] or ''
  pool.reserveTiers, pool.createdAt, pool.updatedAt = v[4] or '', v[5] or '', v[6] or ''
  return pool
end

-- The pool as a reserve decides on it, for less: each HMGET field costs a scan of the pool's listpack
-- (~3.8k instructions a field, bench/lua/attribution.mjs). The fields every decision reads; resumeAt and
-- pauseReason too when the product is paused, reserveTiers when it keeps a reserve (completePool: the
-- rest, nil until then; 10 keys keep the table at 16 slots). What blockersFor and drawableFor decide is
-- the same as on loadPool's pool; before answering a refusal (which reports pauseReason whatever the
-- status) the caller completes the pool.
local function loadPoolForDecision(k)
  local v = redis.call('HMGET', k.pool, 'capacity', 'held', 'committed', 'minAmount', 'maxAmount', 'holdTtlSeconds',
    'opensAt', 'closesAt', 'status', 'reserveAmount')
  if not v[1] then return nil end
  local pool = {capacity = v[1], held = v[2] or '', committed = v[3] or '', minAmount = v[4] or '',
    maxAmount = v[5] or '', holdTtlSeconds = v[6] or '', opensAt = v[7] or '', closesAt = v[8] or '',
    status = v[9] or '', reserveAmount = v[10] or ''}
  if pool.status == 'paused' or numOr(pool.reserveAmount, 0) > 0 then completePool(k, pool) end
  return pool
end

local function reserveApplies(pool, tier)
  local amount = numOr(pool.reserveAmount, 0)
  if amount <= 0 then return false, 0 end
  if tier ~= '' then
    for t in string.gmatch(pool.reserveTiers, '[^,]+') do
      if t == tier then return false, amount end
    end
  end
  return true, amount
end

-- What the listed priority tiers can still take, and what any other line can.
local function poolAvailability(pool)
  local free = pool.capacity - pool.held - pool.committed
  if free < 0 then free = 0 end
  local toAll = free - numOr(pool.reserveAmount, 0)
  if toAll < 0 then toAll = 0 end
  return free, toAll
end

-- pool.borrowable (sharded products, set by reserve for a refusal's drawable only): what the
-- product's other sub-pools could lend this line.
local function poolAvailableForTier(pool, tier)
  local free, toAll = poolAvailability(pool)
  local extra = numOr(pool.borrowable, 0)
  if reserveApplies(pool, tier) then return toAll + extra end
  return free + extra
end

local function lineAvailable(line)
  local a = line.limit - line.held - line.drawn
  if a < 0 then return 0 end
  return a
end

-- Product-level blockers in the contract's order, each {code, retryAtMs or nil}.
local function productBlockers(pool, now)
  local out = {}
  local closesAt = numOr(pool.closesAt, nil)
  if pool.status == 'closed' or (closesAt and now >= closesAt) then
    out[#out + 1] = {'PRODUCT_CLOSED', nil}
  end
  local resumeAt = numOr(pool.resumeAt, nil)
  if pool.status == 'paused' and not (resumeAt and now >= resumeAt) then
    out[#out + 1] = {'PRODUCT_PAUSED', resumeAt}
  end
  local opensAt = numOr(pool.opensAt, nil)
  if opensAt and now < opensAt then
    out[#out + 1] = {'PRODUCT_NOT_OPEN', opensAt}
  end
  return out
end

local LINE_STATUS_BLOCKER = {
  pending_activation = 'ACCOUNT_PENDING_ACTIVATION',
  frozen = 'ACCOUNT_FROZEN',
  closed = 'ACCOUNT_CLOSED',
}

-- Everything a reserve of `amount` checks, in the contract's order; the
-- first entry is the answer a reserve gets. An empty list means "granted".
local function blockersFor(pool, line, now, amount)
  local out = productBlockers(pool, now)
  local statusCode = LINE_STATUS_BLOCKER[line.status]
  if statusCode then out[#out + 1] = {statusCode, nil} end
  local maxAmount = numOr(pool.maxAmount, nil)
  if amount < pool.minAmount + 0 or (maxAmount and amount > maxAmount) then
    out[#out + 1] = {'AMOUNT_OUT_OF_RANGE', nil}
  end
  if amount > lineAvailable(line) then out[#out + 1] = {'CUSTOMER_LIMIT_EXCEEDED', nil} end
  if amount > poolAvailableForTier(pool, line.tier) then out[#out + 1] = {'POOL_EXHAUSTED', nil} end
  return out
end

-- The largest amount a reserve would accept now (0 if none) and the codes
-- that would reject a reserve of minAmount.
local function drawableFor(pool, line, now)
  local blockers = blockersFor(pool, line, now, tonumber(pool.minAmount))
  if #blockers > 0 then return 0, blockers end
  local drawable = math.min(lineAvailable(line), poolAvailableForTier(pool, line.tier))
  local maxAmount = numOr(pool.maxAmount, nil)
  if maxAmount and maxAmount < drawable then drawable = maxAmount end
  return drawable, blockers
end

local function blockerCodes(blockers)
  local codes = {}
  for i = 1, #blockers do codes[i] = blockers[i][1] end
  return codes
end

-- The snapshot shows the status in force: a pause whose resumeAt has passed
-- reads open, as reserves treat it (pauseReason and resumeAt stay, for the record).
local function poolPayload(pool, now)
  local free, toAll = poolAvailability(pool)
  local p = {}
  for f, v in pairs(pool) do p[f] = v end
  local resumeAt = numOr(pool.resumeAt, nil)
  if pool.status == 'paused' and resumeAt and now >= resumeAt then p.status = 'open' end
  p.available = int(free)
  p.availableToAllTiers = int(toAll)
  return p
end

local function linePayload(pool, line, customerId, now)
  local drawable, blockers = drawableFor(pool, line, now)
  local l = {}
  for _, f in ipairs(LINE_FIELDS) do l[f] = line[f] end
  l.customerId = customerId
  l.available = int(lineAvailable(line))
  l.drawable = int(drawable)
  l.blockers = blockerCodes(blockers)
  -- retryAt: when a reserve of minAmount would pass, when that is known: every
  -- blocker lifts at a known time (opensAt, resumeAt), and it is the last of them.
  local retryAt = nil
  for i = 1, #blockers do
    local at = blockers[i][2]
    if not at then retryAt = nil break end
    if not retryAt or at > retryAt then retryAt = at end
  end
  if retryAt then l.retryAt = int(retryAt) end
  return l
end
