--[[
  The service's own ledger (no SETTLEMENT_URL): whether it has recorded a
  reservation's settlement instruction (the worker's look-up before it
  delivers again; lua/record-ledger-entry-1.lua writes them).

  KEYS[1] internalLedger       <prefix>:{p}:ledger

  ARGV[1] reservationId

  Reply: {code, nowMs, '0', payloadJson, '0'}
    OK                   payload {recorded: '1' it has, '0' it has not}
]]
--- @include "includes/reply"

local k = {internalLedger = KEYS[1]}
local now = nowMs()
return reply('OK', now, {recorded = int(redis.call('HEXISTS', k.internalLedger, ARGV[1]))}, 0)
