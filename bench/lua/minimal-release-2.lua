--[[
  The least a release can do (the benchmark's floor, not used by the service):
  find the hold, mark it released once, give its amount back to the pool and
  to the customer's line. No expiry, no status index, no audit trail.

  KEYS[1] hold hash        (written by minimal-reserve-4.lua: customerId, amount)
  KEYS[2] pool remaining counter
  ARGV[1] the line counters' key prefix (the line is <prefix><customerId>,
          named from the hold: a floor for one node, not a cluster-safe script)

  Reply: 'OK' | 'NOT_FOUND' | 'ALREADY_ENDED'
]]
local hold = redis.call('HMGET', KEYS[1], 'customerId', 'amount')
if not hold[2] then return 'NOT_FOUND' end
if redis.call('HSETNX', KEYS[1], 'ended', 'released') == 0 then return 'ALREADY_ENDED' end
redis.call('INCRBY', KEYS[2], hold[2])
redis.call('INCRBY', ARGV[1] .. hold[1], hold[2])
return 'OK'
