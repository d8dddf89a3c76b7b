--[[
  Adds existing reservation records to the per-customer index (a one-off
  backfill for records written before the index existed; reserve-8 indexes
  every new one). Only ids whose record exists at this instant get a member,
  so a record the 7-day purge deletes meanwhile leaves none behind; ZADD NX,
  so running it again changes nothing.

  KEYS[1] records              <prefix>:{p}:res
  KEYS[2] bycustomer           <prefix>:{p}:bycustomer

  ARGV[1..] reservation ids (at most 1,000 per call: bounds unpack())

  Reply: {code, nowMs, '0', payloadJson, holdsExpired}
    OK   payload {added}: members that were not there yet
]]
--- @include "includes/reply"
--- @include "includes/bycustomer"

local k = {records = KEYS[1], bycustomer = KEYS[2]}
local now = nowMs()
local members = {}
local jsons = redis.call('HMGET', k.records, unpack(ARGV))
for i = 1, #ARGV do
  if jsons[i] then
    local r = cjson.decode(jsons[i])
    members[#members + 1] = 0
    members[#members + 1] = byCustomerMember(r.customerId, tonumber(r.createdAt), ARGV[i])
  end
end
local added = 0
if #members > 0 then added = redis.call('ZADD', k.bycustomer, 'NX', unpack(members)) end
return reply('OK', now, {added = int(added)}, 0)
