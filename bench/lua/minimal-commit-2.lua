--[[
  The least a commit can do (the benchmark's floor, not used by the service):
  find the hold, mark it committed once, and count the committed amount on
  the pool and on the customer's line (what every draw must move). No
  expiry, no status index, no audit trail, no partial commit.

  KEYS[1] hold hash          (written by minimal-reserve-4.lua: customerId, amount)
  KEYS[2] pool committed counter
  ARGV[1] the lines' drawn counters' key prefix (the counter is <prefix><customerId>,
          named from the hold: a floor for one node, not a cluster-safe script)

  Reply: 'OK' | 'NOT_FOUND' | 'ALREADY_ENDED'
]]
local hold = redis.call('HMGET', KEYS[1], 'customerId', 'amount')
if not hold[2] then return 'NOT_FOUND' end
if redis.call('HSETNX', KEYS[1], 'ended', 'committed') == 0 then return 'ALREADY_ENDED' end
redis.call('INCRBY', KEYS[2], hold[2])
redis.call('INCRBY', ARGV[1] .. hold[1], hold[2])
return 'OK'
