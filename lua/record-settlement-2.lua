--[[
  Record what settlement learned about a committed reservation. State-checked,
  so a duplicate or re-driven delivery changes nothing the second time.

    committed | settlement_unknown --settled-->  settled   (pool.settled += c; line.settling -= c)
    committed | settlement_unknown --reversed--> reversed  (pool.committed -= c; line.drawn -= c;
                                                             line.settling -= c: quota returned)
    committed                      --unknown-->  settlement_unknown (no counter moves)
    committed                      --attempt-->  committed (attempts += 1, lastError = reason)

  KEYS[1] pool hash          <prefix>:{p}:pool
  KEYS[2] reservation hash   <prefix>:{p}:res:<reservationId>
  (status indexes, events and the line are built from the prefix: same slot)

  ARGV[1] reservationId
  ARGV[2] outcome: settled | reversed | unknown | attempt
  ARGV[3] reason ('' none): in the event; also kept as lastError for attempt, unknown and reversed
          outcomes the worker records
  ARGV[4] required current status ('' any): an operator's resolve applies only to settlement_unknown,
          so resolving twice is a conflict too

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                          payload {reservation, changed '1'|'0'} ('0': already so, nothing done)
    PRODUCT_NOT_FOUND, RESERVATION_NOT_FOUND
    RESERVATION_STATE_CONFLICT  payload {reservation}: not in a state this outcome applies to
]]
--- @include "includes/util"
--- @include "includes/reclaim"
--- @include "includes/reservations"

local poolKey, resKey = KEYS[1], KEYS[2]
local reservationId, outcome, reason = ARGV[1], ARGV[2], ARGV[3]
local now = nowMs()
local prefix = productPrefix(poolKey)
-- A due hold is expired first, so a conflict never reports a stale "held".
local res, err = loadReservation(prefix, poolKey, resKey, reservationId, now)
if err then return reply(err, now, {}, false) end

if outcome == 'attempt' then
  if res.status ~= 'committed' then return reply('OK', now, {reservation = res, changed = '0'}, false) end
  redis.call('HINCRBY', resKey, 'attempts', 1)
  redis.call('HSET', resKey, 'lastError', reason)
  return reply('OK', now, {reservation = toMap(redis.call('HGETALL', resKey)), changed = '1'}, false)
end

if ARGV[4] ~= '' and res.status ~= ARGV[4] then
  return reply('RESERVATION_STATE_CONFLICT', now, {reservation = res}, false)
end
local target = outcome == 'unknown' and 'settlement_unknown' or outcome
if res.status == target then return reply('OK', now, {reservation = res, changed = '0'}, false) end
local allowed = res.status == 'committed' or (res.status == 'settlement_unknown' and outcome ~= 'unknown')
if not allowed then return reply('RESERVATION_STATE_CONFLICT', now, {reservation = res}, false) end

local c = tonumber(res.committedAmount)
local lKey = lineKey(prefix, res.customerId)
if outcome == 'settled' then
  redis.call('HINCRBY', poolKey, 'settled', c)
  redis.call('HINCRBY', lKey, 'settling', -c)
elseif outcome == 'reversed' then
  redis.call('HINCRBY', poolKey, 'committed', -c)
  redis.call('HINCRBY', lKey, 'drawn', -c)
  redis.call('HINCRBY', lKey, 'settling', -c)
end
moveStatus(prefix, resKey, reservationId, res.status, target, now, now, c, reason)
redis.call('HSET', resKey, 'settlementUpdatedAt', int(now))
-- lastError keeps what the ledger last said; an operator's resolve reason lives in the event.
if reason ~= '' and outcome ~= 'settled' and ARGV[4] == '' then redis.call('HSET', resKey, 'lastError', reason) end
return reply('OK', now, {reservation = toMap(redis.call('HGETALL', resKey)), changed = '1'}, false)
