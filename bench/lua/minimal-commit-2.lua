--[[
  The least a commit can do (the benchmark's floor, not used by the service):
  find the hold, mark it committed once, count the committed amount.
  No expiry, no status index, no audit trail, no partial commit.

  KEYS[1] hold hash        (written by minimal-reserve-4.lua: customerId, amount)
  KEYS[2] committed counter (string, minor units)

  Reply: 'OK' | 'NOT_FOUND' | 'ALREADY_ENDED'
]]
local amount = redis.call('HGET', KEYS[1], 'amount')
if not amount then return 'NOT_FOUND' end
if redis.call('HSETNX', KEYS[1], 'ended', 'committed') == 0 then return 'ALREADY_ENDED' end
redis.call('INCRBY', KEYS[2], amount)
return 'OK'
