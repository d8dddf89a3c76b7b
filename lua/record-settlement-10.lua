--[[
  Record what settlement learned about a committed reservation. State-checked,
  so a duplicate or re-driven delivery changes nothing the second time.

    committed | settlement_unknown --settled-->  settled   (pool.settled += c; line.settling -= c)
    committed | settlement_unknown --reversed--> reversed  (pool.committed -= c; line.drawn -= c;
                                                             line.settling -= c: quota returned)
    committed                      --unknown-->  settlement_unknown (no counter moves)
    committed                      --attempt-->  committed (attempts += 1, lastError = reason)

  KEYS[1] pool                       <prefix>:{p}:pool
  KEYS[2] records                    <prefix>:{p}:res
  KEYS[3] lines                      <prefix>:{p}:lines
  KEYS[4] events                     <prefix>:{p}:events
  KEYS[5] status:held                <prefix>:{p}:status:held     (a due hold is expired first)
  KEYS[6] status:expired             <prefix>:{p}:status:expired
  KEYS[7] status:committed           <prefix>:{p}:status:committed
  KEYS[8] status:settlement_unknown  <prefix>:{p}:status:settlement_unknown
  KEYS[9] status:settled             <prefix>:{p}:status:settled
  KEYS[10] status:reversed           <prefix>:{p}:status:reversed

  ARGV[1] reservationId
  ARGV[2] outcome: settled | reversed | unknown | attempt
  ARGV[3] reason ('' none): in the event; also kept as lastError for attempt, unknown and reversed
          outcomes the worker records
  ARGV[4] required current status ('' any): an operator's resolve applies only to settlement_unknown,
          so resolving twice is a conflict too
  ARGV[5] webhooks: '1' records reservation.settled / .reversed / .settlement_unknown (an
          operator's resolve: reservation.resolved) with the record, '' records nothing

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                          payload {reservation, changed '1'|'0'} ('0': already so, nothing done)
    PRODUCT_NOT_FOUND, RESERVATION_NOT_FOUND
    RESERVATION_STATE_CONFLICT  payload {reservation}: not in a state this outcome applies to
]]
--- @include "includes/reply"
--- @include "includes/reservation-lookup"
--- @include "includes/webhooks"

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], events = KEYS[4], held = KEYS[5],
  expired = KEYS[6], committed = KEYS[7], settlement_unknown = KEYS[8], settled = KEYS[9], reversed = KEYS[10]}
local reservationId, outcome, reason, required = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now = nowMs()
-- A due hold is expired first, so a conflict never reports a stale "held".
local res, err, expired = loadReservation(k, reservationId, now)
if err then return reply(err, now, {}, expired) end

if outcome == 'attempt' then
  if res.status ~= 'committed' then return reply('OK', now, {reservation = res, changed = '0'}, expired) end
  res.attempts = int(numOr(res.attempts, 0) + 1)
  res.lastError = reason
  saveRecord(k, res)
  return reply('OK', now, {reservation = res, changed = '1'}, expired)
end

if required ~= '' and res.status ~= required then
  return reply('RESERVATION_STATE_CONFLICT', now, {reservation = res}, expired)
end
local target = outcome == 'unknown' and 'settlement_unknown' or outcome
if res.status == target then return reply('OK', now, {reservation = res, changed = '0'}, expired) end
local allowed = res.status == 'committed' or (res.status == 'settlement_unknown' and outcome ~= 'unknown')
if not allowed then return reply('RESERVATION_STATE_CONFLICT', now, {reservation = res}, expired) end

local c = tonumber(res.committedAmount)
if outcome == 'settled' then
  redis.call('HINCRBY', k.pool, 'settled', c)
  addToLine(k, res.customerId, {settling = -c})
elseif outcome == 'reversed' then
  redis.call('HINCRBY', k.pool, 'committed', -c)
  addToLine(k, res.customerId, {drawn = -c, settling = -c})
end
moveStatus(k, res, target, now, now, c, reason)
res.settlementUpdatedAt = int(now)
-- lastError keeps what the ledger last said; an operator's resolve reason lives in the event.
if reason ~= '' and outcome ~= 'settled' and required == '' then res.lastError = reason end
local json = saveRecord(k, res)
if ARGV[5] == '1' then
  local eventType = required ~= '' and 'reservation.resolved' or ('reservation.' .. target)
  recordWebhook(k, eventType, now, json)
end
return reply('OK', now, {reservation = res, changed = '1'}, expired)
