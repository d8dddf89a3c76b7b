--[[
  Invariant audit step for one product (CONTRACT.md invariant 3): recompute
  the counters from the reservation records and compare them with the pool's
  and a window of lines', inside this one atomic call, so the comparison is
  exact at one instant. Changes nothing but the audit hash. Work per call is
  bounded by ARGV[1] + ARGV[2] + ARGV[3] record/line reads:

  - Settled records are terminal and only ever join status:settled, so their
    sums are folded in incrementally: the audit hash keeps how many entries of
    status:settled (in rank order) are folded in and the last one's id, and
    folds at most ARGV[1] more per call. Only entries scored before this call's
    clock are folded, so later settles (scored >= now) always land after the
    checkpoint; if one ever lands before it (a clock step), the checkpoint's
    rank no longer matches and the sums are rebuilt from scratch.
  - Live records (status:held, status:committed, status:settlement_unknown)
    are read in full, and only when there are at most ARGV[2] of them.
  - Lines: every customer seen in a settled or live record gets a field in
    the audit hash; an HSCAN cursor over those fields checks about ARGV[3]
    lines per call (all of them while the hash is small), rotating.

  Expected values:
    pool.held      = sum of amount over status:held
    pool.settled   = sum of committedAmount over status:settled
    pool.committed = sum of committedAmount over committed, settlement_unknown, settled
    line.held      = the same per customer; line.settling = committed + settlement_unknown
    line.drawn     = committed + settlement_unknown + settled - line.repaid
                     (reversals leave those sets and lower drawn; repayments are counted in repaid)

  KEYS[1] pool hash     <prefix>:{p}:pool
  KEYS[2] audit hash    <prefix>:{p}:audit   fields: settledCount, settledLast, settledSum,
                        s:<customerId> (settled sum folded in, per customer), lineCursor, rotations
  (status sets, reservation records and lines are built from the prefix: same slot)

  ARGV[1] settled records folded in per call at most (N)
  ARGV[2] live records compared at most (L); more: TOO_BUSY, no comparison
  ARGV[3] lines compared per call, about (W: an HSCAN COUNT)

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}; numbers as strings
    OK                 payload {pool: [{field, expected, actual}] for held, committed, settled,
                       lines: [{customerId, field, expected, actual}] (only differing ones),
                       linesChecked, rotationDone '1'|'0', live, settledCount, folded, reset '1'|'0',
                       mismatches: [{reservationId, set, status}] (first 20), mismatchCount}
    BEHIND             payload {settledCount, settledTotal, folded, reset, mismatches, mismatchCount}:
                       more settled records to fold in; call again
    TOO_BUSY           payload {held, committed, settlement_unknown, limit, settledCount, folded, reset,
                       mismatches, mismatchCount}: settled sums are caught up, live sets too large
    PRODUCT_NOT_FOUND
  A mismatch is a record whose status field disagrees with the status set it is in ('missing': no record).
]]
--- @include "includes/util"
--- @include "includes/status"

local MISMATCHES_LISTED = 20

local poolKey, auditKey = KEYS[1], KEYS[2]
local foldLimit, liveLimit, lineWindow = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = nowMs()
if redis.call('EXISTS', poolKey) == 0 then return reply('PRODUCT_NOT_FOUND', now, {}, false) end
local prefix = productPrefix(poolKey)
local settledKey = statusKey(prefix, 'settled')

local mismatches, mismatchCount = {}, 0
local function mismatch(reservationId, set, status)
  mismatchCount = mismatchCount + 1
  if #mismatches < MISMATCHES_LISTED then
    mismatches[#mismatches + 1] = {reservationId = reservationId, set = set, status = status or 'missing'}
  end
end

local function addTo(t, k, v) t[k] = (t[k] or 0) + v end

-- Reads entries of status:settled from rank `from`, at most `limit`. Folding
-- (untilNow) stops at the first entry scored at or after now and checks each
-- record's status. Returns the count read, their sum, per-customer sums, the
-- last id read and how many entries the range held.
local function readSettled(from, limit, untilNow)
  local entries = redis.call('ZRANGE', settledKey, from, from + limit - 1, 'WITHSCORES')
  local n, sum, perCustomer, lastId = 0, 0, {}, nil
  for i = 1, #entries, 2 do
    if untilNow and tonumber(entries[i + 1]) >= now then break end
    local id = entries[i]
    local r = redis.call('HMGET', reservationKey(prefix, id), 'status', 'committedAmount', 'customerId')
    if untilNow and r[1] ~= 'settled' then mismatch(id, 'settled', r[1]) end
    local amount = numOr(r[2], 0)
    sum = sum + amount
    if r[3] then addTo(perCustomer, r[3], amount) end
    n, lastId = n + 1, id
  end
  return n, sum, perCustomer, lastId, #entries / 2
end

-- 1. Fold settled records into the running sums, up to the limit.
local count = numOr(redis.call('HGET', auditKey, 'settledCount'), 0)
local reset = false
if count > 0 then
  local rank = redis.call('ZRANK', settledKey, redis.call('HGET', auditKey, 'settledLast') or '')
  if rank == false or rank ~= count - 1 then
    redis.call('UNLINK', auditKey)
    count, reset = 0, true
  end
end

local folded, sum, perCustomer, lastId, read = readSettled(count, foldLimit, true)
if folded > 0 then
  count = count + folded
  redis.call('HINCRBY', auditKey, 'settledSum', int(sum))
  for customerId, amount in pairs(perCustomer) do
    redis.call('HINCRBY', auditKey, 's:' .. customerId, int(amount))
  end
  redis.call('HSET', auditKey, 'settledCount', int(count), 'settledLast', lastId)
end

local function progress(p)
  p.settledCount = int(count)
  p.folded = int(folded)
  p.reset = reset and '1' or '0'
  p.mismatches = mismatches
  p.mismatchCount = int(mismatchCount)
  return p
end

local settledTotal = redis.call('ZCARD', settledKey)
local caughtUp = folded < read -- stopped at an entry scored at or after now
if not caughtUp and folded == foldLimit and count < settledTotal then
  local nextEntry = redis.call('ZRANGE', settledKey, count, count, 'WITHSCORES')
  caughtUp = tonumber(nextEntry[2]) >= now
end
if not caughtUp and count < settledTotal then
  return reply('BEHIND', now, progress({settledTotal = int(settledTotal)}), false)
end

-- 2. Live records, in full, if few enough.
local LIVE = {'held', 'committed', 'settlement_unknown'}
local sizes, live = {}, 0
for _, s in ipairs(LIVE) do
  sizes[s] = redis.call('ZCARD', statusKey(prefix, s))
  live = live + sizes[s]
end
if live > liveLimit then
  return reply('TOO_BUSY', now, progress({held = int(sizes.held), committed = int(sizes.committed),
    settlement_unknown = int(sizes.settlement_unknown), limit = int(liveLimit)}), false)
end

-- Settled entries scored at or after now (settled earlier in this same millisecond)
-- are not folded in yet but are in the counters: add them for this comparison only.
if settledTotal - count > foldLimit then
  return reply('BEHIND', now, progress({settledTotal = int(settledTotal)}), false)
end
local _, tailSum, tailPerCustomer = readSettled(count, foldLimit, false)
local settledSum = numOr(redis.call('HGET', auditKey, 'settledSum'), 0) + tailSum

local heldSum, liveCommittedSum = 0, 0
local lineHeld, lineSettling, seen = {}, {}, {}
for _, s in ipairs(LIVE) do
  local ids = redis.call('ZRANGE', statusKey(prefix, s), 0, -1)
  for i = 1, #ids do
    local r = redis.call('HMGET', reservationKey(prefix, ids[i]), 'status', 'amount', 'committedAmount', 'customerId')
    if r[1] ~= s then mismatch(ids[i], s, r[1]) end
    local customerId = r[4]
    if s == 'held' then
      local amount = numOr(r[2], 0)
      heldSum = heldSum + amount
      if customerId then addTo(lineHeld, customerId, amount) end
    else
      local amount = numOr(r[3], 0)
      liveCommittedSum = liveCommittedSum + amount
      if customerId then addTo(lineSettling, customerId, amount) end
    end
    -- every customer with a record joins the line rotation
    if customerId and not seen[customerId] then
      seen[customerId] = true
      redis.call('HSETNX', auditKey, 's:' .. customerId, '0')
    end
  end
end

-- 3. The pool, exactly.
local p = redis.call('HMGET', poolKey, 'held', 'committed', 'settled')
local pool = {
  {field = 'held', expected = int(heldSum), actual = int(numOr(p[1], 0))},
  {field = 'committed', expected = int(liveCommittedSum + settledSum), actual = int(numOr(p[2], 0))},
  {field = 'settled', expected = int(settledSum), actual = int(numOr(p[3], 0))},
}

-- 4. A window of lines.
local scan = redis.call('HSCAN', auditKey, redis.call('HGET', auditKey, 'lineCursor') or '0',
  'MATCH', 's:*', 'COUNT', lineWindow)
local lines, linesChecked = {}, 0
local function differs(customerId, field, expected, actual)
  if expected ~= actual then
    lines[#lines + 1] = {customerId = customerId, field = field, expected = int(expected), actual = int(actual)}
  end
end
local fields = scan[2]
for i = 1, #fields, 2 do
  local customerId = string.sub(fields[i], 3)
  local settledC = tonumber(fields[i + 1]) + (tailPerCustomer[customerId] or 0)
  local l = redis.call('HMGET', lineKey(prefix, customerId), 'held', 'drawn', 'settling', 'repaid')
  linesChecked = linesChecked + 1
  if not l[1] and not l[2] then
    differs(customerId, 'exists', 1, 0)
  else
    local settling = lineSettling[customerId] or 0
    differs(customerId, 'held', lineHeld[customerId] or 0, numOr(l[1], 0))
    differs(customerId, 'settling', settling, numOr(l[3], 0))
    differs(customerId, 'drawn', settling + settledC - numOr(l[4], 0), numOr(l[2], 0))
  end
end
redis.call('HSET', auditKey, 'lineCursor', scan[1])
if scan[1] == '0' then redis.call('HINCRBY', auditKey, 'rotations', 1) end

return reply('OK', now, progress({pool = pool, lines = lines, linesChecked = int(linesChecked),
  rotationDone = scan[1] == '0' and '1' or '0', live = int(live)}), false)
