--[[
  Sharded products, the giving half of a quota transfer between sub-pools:
  lowers this sub-pool's allotment (its pool `capacity`) and records the
  transfer as pending, in one step, numbered by a per-pair sequence
  (`givenSeq:<to>`). The receiver's shard-take-2 credits transfers of a pair
  in sequence order, each once, so a crash between the two leaves the quota
  in transit (pending here), never created twice. 'retire' lowers the product's
  capacity instead (sub-pool 0 only, where `productCapacity` lives); 'withhold'
  keeps the amount in this sub-pool's `withheld` (capacity lowered below use:
  every sub-pool's free must stay at or below the product's, see
  src/engine/shardedEngine.ts resize).

  KEYS[1] pool                 <prefix>:{p~t}:pool
  KEYS[2] records              <prefix>:{p~t}:res
  KEYS[3] lines                <prefix>:{p~t}:lines
  KEYS[4] events               <prefix>:{p~t}:events
  KEYS[5] status:held          <prefix>:{p~t}:status:held
  KEYS[6] status:expired       <prefix>:{p~t}:status:expired
  KEYS[7] xferPending          <prefix>:{p~t}:xfer:pending   hash '<to>:<seq>' -> JSON {amount, to, seq, at}

  ARGV[1] unused ('')
  ARGV[2] amount wanted
  ARGV[3] to: the receiving sub-pool's index, 'retire' or 'withhold'
  ARGV[4] mode: 'all' (at most the free quota open to every tier), 'priority' (at most
          the free quota), 'force' (exactly the amount: capacity lowered below use),
          'withheld' (at most this sub-pool's withheld quota, which is lowered instead of the
          allotment: withheld quota sent to a sub-pool below its use)
  ARGV[5] reclaim limit

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                  payload {given, seq, allotment}
    PRODUCT_NOT_FOUND
]]
--- @include "includes/reply"
--- @include "includes/expiry"
--- @include "includes/views"

local k = {pool = KEYS[1], records = KEYS[2], lines = KEYS[3], events = KEYS[4], held = KEYS[5],
  expired = KEYS[6], xferPending = KEYS[7]}
local now = nowMs()
local _, expired = reclaimDue(k, now, tonumber(ARGV[5]))
local pool = loadPool(k)
if not pool then return reply('PRODUCT_NOT_FOUND', now, {}, expired) end
local wanted = tonumber(ARGV[2])
local free, toAll = poolAvailability(pool)
local given = wanted
local fromWithheld = ARGV[4] == 'withheld'
if ARGV[4] == 'all' then given = math.min(wanted, toAll)
elseif ARGV[4] == 'priority' then given = math.min(wanted, free)
elseif fromWithheld then given = math.min(wanted, tonumber(redis.call('HGET', k.pool, 'withheld') or '0')) end
local seq = '0'
if given > 0 then
  -- Withheld quota leaves the withheld count; the allotment (and this sub-pool's free) stays.
  redis.call('HINCRBY', k.pool, fromWithheld and 'withheld' or 'capacity', int(-given))
  if ARGV[3] == 'retire' then
    redis.call('HINCRBY', k.pool, 'productCapacity', int(-given))
  elseif ARGV[3] == 'withhold' then
    redis.call('HINCRBY', k.pool, 'withheld', int(given))
  else
    seq = tostring(redis.call('HINCRBY', k.pool, 'givenSeq:' .. ARGV[3], 1))
    redis.call('HSET', k.xferPending, ARGV[3] .. ':' .. seq,
      cjson.encode({amount = int(given), to = ARGV[3], seq = seq, at = int(now)}))
    redis.call('HINCRBY', k.pool, 'givenTo:' .. ARGV[3], int(given))
  end
end
return reply('OK', now, {given = int(given), seq = seq, allotment = redis.call('HGET', k.pool, 'capacity')}, expired)
