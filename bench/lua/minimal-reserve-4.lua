--[[
  The least a reserve can do (the benchmark's floor, not used by the service):
  check two counters, decrement both, write a hold, set an idempotency key.
  No expiry, no status checks, no audit trail, no stored answer.

  KEYS[1] pool remaining counter      (string, minor units)
  KEYS[2] line remaining counter      (string, minor units)
  KEYS[3] hold hash                   (written on a grant)
  KEYS[4] idempotency key             (string, set on a grant)

  ARGV[1] amount (minor units)
  ARGV[2] idempotency TTL, seconds
  ARGV[3] customerId

  Reply: 'OK' | 'POOL_EXHAUSTED' | 'CUSTOMER_LIMIT_EXCEEDED'
]]
local amount = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') < amount then return 'POOL_EXHAUSTED' end
if tonumber(redis.call('GET', KEYS[2]) or '0') < amount then return 'CUSTOMER_LIMIT_EXCEEDED' end
redis.call('DECRBY', KEYS[1], amount)
redis.call('DECRBY', KEYS[2], amount)
redis.call('HSET', KEYS[3], 'customerId', ARGV[3], 'amount', amount)
redis.call('SET', KEYS[4], 'OK', 'EX', ARGV[2])
return 'OK'
