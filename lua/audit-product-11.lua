--[[
  Invariant audit step for one product (CONTRACT.md invariant 3): compares
  the pool's counters and a window of lines with what the reservation records
  add up to, exactly, in calls of bounded work (each ~20 ms at most at the
  default limits, at any number of live records). Changes nothing but the
  audit and auditPass hashes.

  1. Settled records are terminal and only ever join status:settled, so their
     sum is folded in incrementally: the audit hash keeps how many entries of
     status:settled (rank order) are folded in and the last one's id, and
     folds at most ARGV[1] more per call (entries scored before this call's
     clock; entries of this same millisecond are added for the comparison
     only). If the checkpoint's rank no longer matches (a clock step), the sum
     is rebuilt from zero. Until caught up: BEHIND.
  2. The pool. With at most ARGV[2] live records (held, committed,
     settlement_unknown), all are read and compared in this call (OK).
     Otherwise an exact comparison pass at the instant T0 it starts, walked in
     bounded calls and corrected by the events stream (state in auditPass):
     - start (T0): H0, C0, S0 = the pool's held, committed, settled; settled0 =
       the settled sum; E = the stream's last entry id.
     - every later call folds the events after E (at most ARGV[5]): an event
       into a live set S marks `n:S:r` (r entered S after T0: never counted
       for S); an event out of S of an unmarked r means r was in S at T0: if
       the walk counted it (`w:S:r`) nothing more, else its amount is added
       to departed_S. Records never re-enter a live state. If E is no longer
       in the stream (trimmed before the fold read past it), events may be
       lost: the pass is aborted (PASS_ABORTED) and starts again.
     - only when the fold reached the stream's end in this call, the walk
       reads the next ARGV[4] records of the current live set by score (a
       score never changes while a record is in a set; the last score's whole
       tie group is taken, so the cursor is a score), skipping `n:` marks,
       adding amounts to walked_S and marking `w:S:r`.
     - when all three sets are walked (fold at the end in the same call):
       held(T0) = walked + departed of held; committed(T0) = settled0 + walked
       + departed of committed and settlement_unknown; settled(T0) = settled0.
       Compared with H0, C0, S0 (OK).
  3. Lines, a window per call, exactly and atomically per line: customers
     are walked in the per-customer index (bycustomer) order; each one's
     records (all of them, through the index) are read in this call and
     compared with the line: held, settling (committed + settlement_unknown),
     drawn = settling + settled - repaid. At most ARGV[3] lines and about
     ARGV[6] records per call; a customer with more than 2 x ARGV[6] records
     cannot be read in one bounded call and is skipped (linesUnchecked).

  KEYS[1] pool                       <prefix>:{p}:pool
  KEYS[2] records                    <prefix>:{p}:res
  KEYS[3] lines                      <prefix>:{p}:lines
  KEYS[4] events                     <prefix>:{p}:events
  KEYS[5] audit                      <prefix>:{p}:audit       settledCount, settledLast, settledSum,
                                     lineAfter, rotations, comparedAt, passesAborted
  KEYS[6] auditPass                  <prefix>:{p}:auditpass   the pool pass in progress
  KEYS[7] bycustomer                 <prefix>:{p}:bycustomer
  KEYS[8] status:held                <prefix>:{p}:status:held
  KEYS[9] status:committed           <prefix>:{p}:status:committed
  KEYS[10] status:settlement_unknown <prefix>:{p}:status:settlement_unknown
  KEYS[11] status:settled            <prefix>:{p}:status:settled

  ARGV[1] settled records folded in per call at most
  ARGV[2] live records compared in one call at most; more: a pass
  ARGV[3] lines compared per call at most
  ARGV[4] live records walked per pass call (plus the last score's tie group)
  ARGV[5] events folded per pass call at most
  ARGV[6] records read for lines per call, about

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}; numbers as strings. Every payload but
  PRODUCT_NOT_FOUND has settledCount, folded, reset, mismatches (first 20), mismatchCount,
  comparedAt (ms of the last completed pool comparison, '' if none), passesAborted, us (this
  call's own time, µs); OK, PASS and PASS_ABORTED also the line window: lines
  [{customerId, field, expected, actual}] (differing ones), linesChecked, linesUnchecked,
  rotationDone '1'|'0'.
    OK             the pool was compared in this call: pool [{field, expected, actual}] for held,
                   committed, settled (at T0 for a pass: passStartedAt, passCalls), live
    PASS           a pass is under way: pass {startedAt, set, walked, departed, events, calls}
    PASS_ABORTED   the events the pass needed were trimmed before it read them: aborted
    BEHIND         settledTotal: more settled records to fold in; call again
    PRODUCT_NOT_FOUND
  A mismatch is a record whose status field disagrees with the set it is in ('missing': no record).
]]
--- @include "includes/reply"
--- @include "includes/records"
--- @include "includes/statuses"
--- @include "includes/bycustomer"

local MISMATCHES_LISTED = 20
local HSET_BATCH = 500 -- fields per HSET / HMGET (bounds unpack())

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], events = KEYS[4], audit = KEYS[5],
  auditPass = KEYS[6], bycustomer = KEYS[7], held = KEYS[8], committed = KEYS[9],
  settlement_unknown = KEYS[10], settled = KEYS[11]}
local foldLimit, liveLimit, lineWindow = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local walkBatch, eventBatch, lineRecords = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

local function clockUs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local startedUs = clockUs()
local now = math.floor(startedUs / 1000)
if redis.call('EXISTS', k.pool) == 0 then return reply('PRODUCT_NOT_FOUND', now, {}, 0) end

local LIVE = {'held', 'committed', 'settlement_unknown'}
local IS_LIVE = {held = true, committed = true, settlement_unknown = true}

local mismatches, mismatchCount = {}, 0
local function mismatch(reservationId, set, status)
  mismatchCount = mismatchCount + 1
  if #mismatches < MISMATCHES_LISTED then
    mismatches[#mismatches + 1] = {reservationId = reservationId, set = set, status = status or 'missing'}
  end
end

-- A live record's amount in set s: held counts the hold, the others what was committed.
local function liveAmount(r, s)
  if s == 'held' then return numOr(r.amount, 0) end
  return numOr(r.committedAmount, 0)
end

-- HSET / HMGET of many fields of the hash k[role], in batches.
local function hsetMany(role, flat)
  for i = 1, #flat, 2 * HSET_BATCH do
    redis.call('HSET', k[role], unpack(flat, i, math.min(#flat, i + 2 * HSET_BATCH - 1)))
  end
end
local function hmgetMany(role, fields)
  local out = {}
  for i = 1, #fields, HSET_BATCH do
    local part = redis.call('HMGET', k[role], unpack(fields, i, math.min(#fields, i + HSET_BATCH - 1)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

-- 1. Fold settled records into the running sum, up to the limit. ----------------------------

-- Entries of status:settled from rank `from`, at most `limit`; folding (untilNow) stops at the
-- first entry scored at or after now and checks each record's status.
local function readSettled(from, limit, untilNow)
  local entries = redis.call('ZRANGE', k.settled, from, from + limit - 1, 'WITHSCORES')
  local n, sum, lastId = 0, 0, nil
  for i = 1, #entries, 2 do
    if untilNow and tonumber(entries[i + 1]) >= now then break end
    local id = entries[i]
    local r = loadRecord(k, id) or {}
    if untilNow and r.status ~= 'settled' then mismatch(id, 'settled', r.status) end
    sum = sum + numOr(r.committedAmount, 0)
    n, lastId = n + 1, id
  end
  return n, sum, lastId, #entries / 2
end

local count = numOr(redis.call('HGET', k.audit, 'settledCount'), 0)
local reset = false
if count > 0 then
  local rank = redis.call('ZRANK', k.settled, redis.call('HGET', k.audit, 'settledLast') or '')
  if rank == false or rank ~= count - 1 then
    -- Rebuilt from zero; the pool pass's settled0 came from the old sum, so it restarts too.
    redis.call('HDEL', k.audit, 'settledCount', 'settledLast', 'settledSum')
    redis.call('UNLINK', k.auditPass)
    count, reset = 0, true
  end
end

local folded, sum, lastId, read = readSettled(count, foldLimit, true)
if folded > 0 then
  count = count + folded
  redis.call('HINCRBY', k.audit, 'settledSum', int(sum))
  redis.call('HSET', k.audit, 'settledCount', int(count), 'settledLast', lastId)
end

local function progress(p)
  local a = redis.call('HMGET', k.audit, 'comparedAt', 'passesAborted')
  p.settledCount = int(count)
  p.folded = int(folded)
  p.reset = reset and '1' or '0'
  p.mismatches = mismatches
  p.mismatchCount = int(mismatchCount)
  p.comparedAt = a[1] or ''
  p.passesAborted = a[2] or '0'
  p.us = int(clockUs() - startedUs)
  return p
end

local settledTotal = redis.call('ZCARD', k.settled)
local caughtUp = folded < read -- stopped at an entry scored at or after now
if not caughtUp and folded == foldLimit and count < settledTotal then
  local nextEntry = redis.call('ZRANGE', k.settled, count, count, 'WITHSCORES')
  caughtUp = tonumber(nextEntry[2]) >= now
end
if (not caughtUp and count < settledTotal) or settledTotal - count > foldLimit then
  return reply('BEHIND', now, progress({settledTotal = int(settledTotal)}), 0)
end
-- Settled entries scored at or after now (this same millisecond) are in the counters: add them.
local _, tailSum = readSettled(count, foldLimit, false)
local settledSum = numOr(redis.call('HGET', k.audit, 'settledSum'), 0) + tailSum

-- 2. The pool. ---------------------------------------------------------------------------------

local function poolChecks(held, committed, settled, actual)
  return {
    {field = 'held', expected = int(held), actual = int(numOr(actual[1], 0))},
    {field = 'committed', expected = int(committed), actual = int(numOr(actual[2], 0))},
    {field = 'settled', expected = int(settled), actual = int(numOr(actual[3], 0))},
  }
end

local function compared(pool, extra)
  redis.call('HSET', k.audit, 'comparedAt', int(now))
  extra.pool = pool
  return 'OK', extra
end

-- Every live record, in this call.
local function compareAll(live)
  local sums = {held = 0, committed = 0, settlement_unknown = 0}
  for _, s in ipairs(LIVE) do
    local ids = redis.call('ZRANGE', k[s], 0, -1)
    local jsons = hmgetMany('records', ids)
    for i = 1, #ids do
      local r = jsons[i] and cjson.decode(jsons[i]) or {}
      if r.status ~= s then mismatch(ids[i], s, r.status) end
      sums[s] = sums[s] + liveAmount(r, s)
    end
  end
  local actual = redis.call('HMGET', k.pool, 'held', 'committed', 'settled')
  return compared(poolChecks(sums.held, settledSum + sums.committed + sums.settlement_unknown, settledSum, actual),
    {live = int(live)})
end

local function startPass()
  local p = redis.call('HMGET', k.pool, 'held', 'committed', 'settled')
  local last = redis.call('XREVRANGE', k.events, '+', '-', 'COUNT', 1)
  redis.call('HSET', k.auditPass, 'startedAt', int(now), 'H0', int(numOr(p[1], 0)), 'C0', int(numOr(p[2], 0)),
    'S0', int(numOr(p[3], 0)), 'settled0', int(settledSum), 'E', last[1] and last[1][1] or '0-0',
    'set', '1', 'cursor', '-inf', 'events', '0', 'calls', '1')
  for _, s in ipairs(LIVE) do
    redis.call('HSET', k.auditPass, 'walked:' .. s, '0', 'departed:' .. s, '0')
  end
  return 'PASS', {pass = {startedAt = int(now), set = 'held', events = '0', calls = '1'}}
end

local function abortPass()
  redis.call('UNLINK', k.auditPass)
  redis.call('HINCRBY', k.audit, 'passesAborted', 1)
  return 'PASS_ABORTED', {}
end

-- Folds the events since the pass's E; returns true when it reached the stream's end, or nil
-- when events were lost.
local function foldEvents(st, departed)
  local entries
  if st.E == '0-0' then
    -- The stream was empty at T0: nothing can have been trimmed unless it has reached its cap since.
    if redis.call('XLEN', k.events) >= EVENTS_MAXLEN then return nil end
    entries = redis.call('XRANGE', k.events, '-', '+', 'COUNT', eventBatch)
  else
    entries = redis.call('XRANGE', k.events, st.E, '+', 'COUNT', eventBatch + 1)
    if not entries[1] or entries[1][1] ~= st.E then return nil end -- E was trimmed away
    table.remove(entries, 1)
  end
  for _, entry in ipairs(entries) do
    local f, flat = {}, entry[2]
    for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
    local r, from, to = f.reservationId, f.from, f.to
    if IS_LIVE[from] then
      if redis.call('HDEL', k.auditPass, 'n:' .. from .. ':' .. r) == 0
        and redis.call('HDEL', k.auditPass, 'w:' .. from .. ':' .. r) == 0 then
        -- In `from` at T0 and not walked yet: it left before the walk reached it.
        local rec = loadRecord(k, r)
        if not rec then mismatch(r, from, 'missing') end
        departed[from] = departed[from] + liveAmount(rec or {}, from)
      end
    end
    if IS_LIVE[to] then redis.call('HSET', k.auditPass, 'n:' .. to .. ':' .. r, '1') end
  end
  if #entries > 0 then st.E = entries[#entries][1] end
  st.events = int(tonumber(st.events) + #entries)
  return #entries < eventBatch
end

-- Walks the next chunk of the current live set; returns true when every set is walked.
local function walkChunk(st, walked)
  local setIndex = tonumber(st.set)
  if setIndex > #LIVE then return true end
  local s = LIVE[setIndex]
  local from = st.cursor == '-inf' and '-inf' or ('(' .. st.cursor)
  local items = redis.call('ZRANGE', k[s], from, '+inf', 'BYSCORE', 'LIMIT', 0, walkBatch, 'WITHSCORES')
  local ids = {}
  if #items / 2 < walkBatch then
    for i = 1, #items, 2 do ids[#ids + 1] = items[i] end
    st.set, st.cursor = int(setIndex + 1), '-inf'
  else
    local lastScore = items[#items]
    for i = 1, #items, 2 do
      if items[i + 1] ~= lastScore then ids[#ids + 1] = items[i] end
    end
    for _, id in ipairs(redis.call('ZRANGE', k[s], lastScore, lastScore, 'BYSCORE')) do ids[#ids + 1] = id end
    st.cursor = lastScore
  end
  local marks = {}
  local jsons = hmgetMany('records', ids)
  for i = 1, #ids do
    if redis.call('HEXISTS', k.auditPass, 'n:' .. s .. ':' .. ids[i]) == 0 then
      local r = jsons[i] and cjson.decode(jsons[i]) or {}
      if r.status ~= s then mismatch(ids[i], s, r.status) end
      walked[s] = walked[s] + liveAmount(r, s)
      marks[#marks + 1] = 'w:' .. s .. ':' .. ids[i]
      marks[#marks + 1] = '1'
    end
  end
  hsetMany('auditPass', marks)
  return tonumber(st.set) > #LIVE
end

local function passStep()
  local flat = redis.call('HMGET', k.auditPass, 'startedAt', 'H0', 'C0', 'S0', 'settled0', 'E', 'set', 'cursor',
    'events', 'calls', 'walked:held', 'walked:committed', 'walked:settlement_unknown',
    'departed:held', 'departed:committed', 'departed:settlement_unknown')
  local st = {startedAt = flat[1], H0 = flat[2], C0 = flat[3], S0 = flat[4], settled0 = flat[5], E = flat[6],
    set = flat[7], cursor = flat[8], events = flat[9], calls = int(tonumber(flat[10]) + 1)}
  local walked = {held = tonumber(flat[11]), committed = tonumber(flat[12]), settlement_unknown = tonumber(flat[13])}
  local departed = {held = tonumber(flat[14]), committed = tonumber(flat[15]), settlement_unknown = tonumber(flat[16])}

  local atEnd = foldEvents(st, departed)
  if atEnd == nil then return abortPass() end
  local done = false
  if atEnd then done = walkChunk(st, walked) end

  if done then
    local settled0 = tonumber(st.settled0)
    local pool = poolChecks(walked.held + departed.held,
      settled0 + walked.committed + departed.committed + walked.settlement_unknown + departed.settlement_unknown,
      settled0, {st.H0, st.C0, st.S0})
    redis.call('UNLINK', k.auditPass)
    return compared(pool, {passStartedAt = st.startedAt, passCalls = st.calls})
  end
  local save = {'E', st.E, 'set', st.set, 'cursor', st.cursor, 'events', st.events, 'calls', st.calls}
  for _, s in ipairs(LIVE) do
    save[#save + 1] = 'walked:' .. s
    save[#save + 1] = int(walked[s])
    save[#save + 1] = 'departed:' .. s
    save[#save + 1] = int(departed[s])
  end
  redis.call('HSET', k.auditPass, unpack(save))
  return 'PASS', {pass = {startedAt = st.startedAt, set = LIVE[tonumber(st.set)] or 'done', events = st.events,
    calls = st.calls}}
end

local code, payload
if redis.call('EXISTS', k.auditPass) == 1 then
  code, payload = passStep()
else
  local live = 0
  for _, s in ipairs(LIVE) do live = live + redis.call('ZCARD', k[s]) end
  if live <= liveLimit then code, payload = compareAll(live) else code, payload = startPass() end
end

local poolUs = clockUs() - startedUs

-- 3. A window of lines, each exact at this instant. --------------------------------------------

local lines, linesChecked, linesUnchecked, recordsRead = {}, 0, 0, 0
local function differs(customerId, field, expected, actual)
  if expected ~= actual then
    lines[#lines + 1] = {customerId = customerId, field = field, expected = int(expected), actual = int(actual)}
  end
end

local function checkLine(customerId, members)
  local ids = {}
  local skip = #customerId + 16 -- '<customerId>:<13 digits>:'
  for i = 1, #members do ids[i] = string.sub(members[i], skip) end
  local jsons = hmgetMany('records', ids)
  local held, settling, settled = 0, 0, 0
  for i = 1, #ids do
    if not jsons[i] then
      mismatch(ids[i], 'bycustomer', 'missing')
    else
      local r = cjson.decode(jsons[i])
      local settlingStatus = r.status == 'committed' or r.status == 'settlement_unknown'
      if r.status == 'held' then held = held + numOr(r.amount, 0)
      elseif settlingStatus then settling = settling + numOr(r.committedAmount, 0)
      elseif r.status == 'settled' then settled = settled + numOr(r.committedAmount, 0) end
    end
  end
  local json = redis.call('HGET', k.lines, customerId)
  if not json then return differs(customerId, 'exists', 1, 0) end
  local l = cjson.decode(json)
  differs(customerId, 'held', held, numOr(l.held, 0))
  differs(customerId, 'settling', settling, numOr(l.settling, 0))
  differs(customerId, 'drawn', settling + settled - numOr(l.repaid, 0), numOr(l.drawn, 0))
end

local after = redis.call('HGET', k.audit, 'lineAfter') or ''
local rotationDone = false
while linesChecked + linesUnchecked < lineWindow and recordsRead < lineRecords do
  local _, afterEnd = byCustomerRange(after)
  local nextMember = redis.call('ZRANGEBYLEX', k.bycustomer, after == '' and '-' or afterEnd, '+', 'LIMIT', 0, 1)
  if #nextMember == 0 then
    after, rotationDone = '', true
    redis.call('HINCRBY', k.audit, 'rotations', 1)
    break
  end
  local customerId = string.match(nextMember[1], '^([^:]+):')
  local min, max = byCustomerRange(customerId)
  local n = redis.call('ZLEXCOUNT', k.bycustomer, min, max)
  if n > 2 * lineRecords then
    linesUnchecked = linesUnchecked + 1
  elseif linesChecked > 0 and recordsRead + n > lineRecords then
    break -- the next call starts with it
  else
    checkLine(customerId, redis.call('ZRANGEBYLEX', k.bycustomer, min, max))
    linesChecked, recordsRead = linesChecked + 1, recordsRead + n
  end
  after = customerId
end
redis.call('HSET', k.audit, 'lineAfter', after)

payload.lines = lines
payload.linesChecked = int(linesChecked)
payload.linesUnchecked = int(linesUnchecked)
payload.rotationDone = rotationDone and '1' or '0'
payload.poolUs = int(poolUs)
return reply(code, now, progress(payload), 0)
