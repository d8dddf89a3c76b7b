--[[
  The service's own ledger (no SETTLEMENT_URL): records a settlement
  instruction once per reservation. HSETNX: a redelivery keeps the first
  entry, so recording is idempotent like a real ledger's idempotency key.

  KEYS[1] internalLedger       <prefix>:{p}:ledger

  ARGV[1] reservationId
  ARGV[2] entry JSON (the instruction and its recordedAt)

  Reply: {code, nowMs, '0', payloadJson, '0'}
    OK                   payload {recorded: '1' new, '0' already there}
]]
--- @include "includes/reply"

local k = {internalLedger = KEYS[1]}
local now = nowMs()
local recorded = redis.call('HSETNX', k.internalLedger, ARGV[1], ARGV[2])
return reply('OK', now, {recorded = int(recorded)}, 0)
