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

  KEYS[1] pool                       <prefix>:{p}:pool
  KEYS[2] records                    <prefix>:{p}:res
  KEYS[3] lines                      <prefix>:{p}:lines
  KEYS[4] audit                      <prefix>:{p}:audit   fields: settledCount, settledLast, settledSum,
                                     s:<customerId> (settled sum folded in, per customer), lineCursor,
                                     rotations
  KEYS[5] status:held                <prefix>:{p}:status:held
  KEYS[6] status:committed           <prefix>:{p}:status:committed
  KEYS[7] status:settlement_unknown  <prefix>:{p}:status:settlement_unknown
  KEYS[8] status:settled             <prefix>:{p}:status:settled

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
--- @include "includes/reply"
--- @include "includes/records"

local MISMATCHES_LISTED = 20

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], audit = KEYS[4], held = KEYS[5],
  committed = KEYS[6], settlement_unknown = KEYS[7], settled = KEYS[8]}
local foldLimit, liveLimit, lineWindow = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = nowMs()
if redis.call('EXISTS', k.pool) == 0 then return reply('PRODUCT_NOT_FOUND', now, {}, 0) end

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
  local entries = redis.call('ZRANGE', k.settled, from, from + limit - 1, 'WITHSCORES')
  local n, sum, perCustomer, lastId = 0, 0, {}, nil
  for i = 1, #entries, 2 do
    if untilNow and tonumber(entries[i + 1]) >= now then break end
    local id = entries[i]
    local r = loadRecord(k, id) or {}
    if untilNow and r.status ~= 'settled' then mismatch(id, 'settled', r.status) end
    local amount = numOr(r.committedAmount, 0)
    sum = sum + amount
    if r.customerId then addTo(perCustomer, r.customerId, amount) end
    n, lastId = n + 1, id
  end
  return n, sum, perCustomer, lastId, #entries / 2
end

-- 1. Fold settled records into the running sums, up to the limit.
local count = numOr(redis.call('HGET', k.audit, 'settledCount'), 0)
local reset = false
if count > 0 then
  local rank = redis.call('ZRANK', k.settled, redis.call('HGET', k.audit, 'settledLast') or '')
  if rank == false or rank ~= count - 1 then
    redis.call('UNLINK', k.audit)
    count, reset = 0, true
  end
end

local folded, sum, perCustomer, lastId, read = readSettled(count, foldLimit, true)
if folded > 0 then
  count = count + folded
  redis.call('HINCRBY', k.audit, 'settledSum', int(sum))
  for customerId, amount in pairs(perCustomer) do
    redis.call('HINCRBY', k.audit, 's:' .. customerId, int(amount))
  end
  redis.call('HSET', k.audit, 'settledCount', int(count), 'settledLast', lastId)
end

local function progress(p)
  p.settledCount = int(count)
  p.folded = int(folded)
  p.reset = reset and '1' or '0'
  p.mismatches = mismatches
  p.mismatchCount = int(mismatchCount)
  return p
end

local settledTotal = redis.call('ZCARD', k.settled)
local caughtUp = folded < read -- stopped at an entry scored at or after now
if not caughtUp and folded == foldLimit and count < settledTotal then
  local nextEntry = redis.call('ZRANGE', k.settled, count, count, 'WITHSCORES')
  caughtUp = tonumber(nextEntry[2]) >= now
end
if not caughtUp and count < settledTotal then
  return reply('BEHIND', now, progress({settledTotal = int(settledTotal)}), 0)
end

-- 2. Live records, in full, if few enough.
local LIVE = {'held', 'committed', 'settlement_unknown'}
local sizes, live = {}, 0
for _, s in ipairs(LIVE) do
  sizes[s] = redis.call('ZCARD', k[s])
  live = live + sizes[s]
end
if live > liveLimit then
  return reply('TOO_BUSY', now, progress({held = int(sizes.held), committed = int(sizes.committed),
    settlement_unknown = int(sizes.settlement_unknown), limit = int(liveLimit)}), 0)
end

-- Settled entries scored at or after now (settled earlier in this same millisecond)
-- are not folded in yet but are in the counters: add them for this comparison only.
if settledTotal - count > foldLimit then
  return reply('BEHIND', now, progress({settledTotal = int(settledTotal)}), 0)
end
local _, tailSum, tailPerCustomer = readSettled(count, foldLimit, false)
local settledSum = numOr(redis.call('HGET', k.audit, 'settledSum'), 0) + tailSum

local heldSum, liveCommittedSum = 0, 0
local lineHeld, lineSettling, seen = {}, {}, {}
for _, s in ipairs(LIVE) do
  local ids = redis.call('ZRANGE', k[s], 0, -1)
  for i = 1, #ids do
    local r = loadRecord(k, ids[i]) or {}
    if r.status ~= s then mismatch(ids[i], s, r.status) end
    local customerId = r.customerId
    if s == 'held' then
      local amount = numOr(r.amount, 0)
      heldSum = heldSum + amount
      if customerId then addTo(lineHeld, customerId, amount) end
    else
      local amount = numOr(r.committedAmount, 0)
      liveCommittedSum = liveCommittedSum + amount
      if customerId then addTo(lineSettling, customerId, amount) end
    end
    -- every customer with a record joins the line rotation
    if customerId and not seen[customerId] then
      seen[customerId] = true
      redis.call('HSETNX', k.audit, 's:' .. customerId, '0')
    end
  end
end

-- 3. The pool, exactly.
local p = redis.call('HMGET', k.pool, 'held', 'committed', 'settled')
local pool = {
  {field = 'held', expected = int(heldSum), actual = int(numOr(p[1], 0))},
  {field = 'committed', expected = int(liveCommittedSum + settledSum), actual = int(numOr(p[2], 0))},
  {field = 'settled', expected = int(settledSum), actual = int(numOr(p[3], 0))},
}

-- 4. A window of lines.
local scan = redis.call('HSCAN', k.audit, redis.call('HGET', k.audit, 'lineCursor') or '0',
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
  local json = redis.call('HGET', k.lines, customerId)
  linesChecked = linesChecked + 1
  if not json then
    differs(customerId, 'exists', 1, 0)
  else
    local l = cjson.decode(json)
    local settling = lineSettling[customerId] or 0
    differs(customerId, 'held', lineHeld[customerId] or 0, numOr(l.held, 0))
    differs(customerId, 'settling', settling, numOr(l.settling, 0))
    differs(customerId, 'drawn', settling + settledC - numOr(l.repaid, 0), numOr(l.drawn, 0))
  end
end
redis.call('HSET', k.audit, 'lineCursor', scan[1])
if scan[1] == '0' then redis.call('HINCRBY', k.audit, 'rotations', 1) end

return reply('OK', now, progress({pool = pool, lines = lines, linesChecked = int(linesChecked),
  rotationDone = scan[1] == '0' and '1' or '0', live = int(live)}), 0)
