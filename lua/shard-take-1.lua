--[[
  Sharded products, the receiving half of a quota transfer: raises this
  sub-pool's allotment by the transfer's amount, once. Transfers of one pair
  (giver -> this sub-pool) are credited in their sequence order:
  `appliedSeq:<from>` is the last one credited, so a repeat (seq at or below
  it) changes nothing and a gap (an earlier one still pending) is answered
  `behind` (the caller credits the earlier one first). 'grow' raises the
  product's capacity and this allotment together (sub-pool 0 only, where
  `productCapacity` lives; a PUT/PATCH of capacity, absolute, so no sequence).
  'withheld' returns up to ARGV[2] of this sub-pool's `withheld` to its
  allotment ('' = all; the caller made sure no sub-pool's free then exceeds
  the product's: capacity rose by at least that much, or none is below use).
  'repair:<i>' undoes a credit from sub-pool i that has no debit there (the
  transfer audit found this sub-pool credited more from i than i gave, or a
  sequence i never issued): lowers the allotment and `receivedFrom:<i>` by
  ARGV[2] and sets `appliedSeq:<i>` back to ARGV[1] (i's last issued) if past it.

  KEYS[1] pool                 <prefix>:{p~t}:pool

  ARGV[1] seq ('' for grow; repair: the giver's last issued sequence)
  ARGV[2] amount ('' for withheld: all of it)
  ARGV[3] from: the giving sub-pool's index, 'grow', 'withheld' or 'repair:<i>'

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK                  payload {applied '1'|'0', behind '1'|'0', allotment}
    PRODUCT_NOT_FOUND
]]
--- @include "includes/reply"
--- @include "includes/numbers"

local k = {pool = KEYS[1]}
local now = nowMs()
if redis.call('HEXISTS', k.pool, 'capacity') == 0 then return reply('PRODUCT_NOT_FOUND', now, {}, 0) end
local applied, behind = '0', '0'
if ARGV[3] == 'grow' then
  redis.call('HINCRBY', k.pool, 'capacity', ARGV[2])
  redis.call('HINCRBY', k.pool, 'productCapacity', ARGV[2])
  applied = '1'
elseif ARGV[3] == 'withheld' then
  local w = tonumber(redis.call('HGET', k.pool, 'withheld') or '0')
  if ARGV[2] ~= '' and tonumber(ARGV[2]) < w then w = tonumber(ARGV[2]) end
  if w > 0 then
    redis.call('HINCRBY', k.pool, 'capacity', int(w))
    redis.call('HINCRBY', k.pool, 'withheld', int(-w))
    applied = '1'
  end
elseif string.sub(ARGV[3], 1, 7) == 'repair:' then
  local from = string.sub(ARGV[3], 8)
  redis.call('HINCRBY', k.pool, 'capacity', int(-tonumber(ARGV[2])))
  redis.call('HINCRBY', k.pool, 'receivedFrom:' .. from, int(-tonumber(ARGV[2])))
  local last = tonumber(redis.call('HGET', k.pool, 'appliedSeq:' .. from) or '0')
  if last > tonumber(ARGV[1]) then redis.call('HSET', k.pool, 'appliedSeq:' .. from, ARGV[1]) end
  applied = '1'
else
  local seq = tonumber(ARGV[1])
  local last = tonumber(redis.call('HGET', k.pool, 'appliedSeq:' .. ARGV[3]) or '0')
  if seq == last + 1 then
    redis.call('HINCRBY', k.pool, 'capacity', ARGV[2])
    redis.call('HINCRBY', k.pool, 'receivedFrom:' .. ARGV[3], ARGV[2])
    redis.call('HSET', k.pool, 'appliedSeq:' .. ARGV[3], ARGV[1])
    applied = '1'
  elseif seq > last + 1 then
    behind = '1'
  end
end
return reply('OK', now, {applied = applied, behind = behind, allotment = redis.call('HGET', k.pool, 'capacity')}, 0)
