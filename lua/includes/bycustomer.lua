--[[
  The per-customer index (k.bycustomer): a zset, every score 0, one member
  per reservation record: `<customerId>:<createdAt, 13-digit ms>:<reservationId>`.
  Ids are [A-Za-z0-9._-] and ':' sorts after '-', '.' and digits and before
  letters, so one customer's members are exactly the lex range
  [<c>: .. (<c>; (';' is ':' + 1), ordered by creation time: newest first is
  ZREVRANGEBYLEX. reserve adds a member; the 7-day purge removes it with the record.
]]

local function byCustomerMember(customerId, createdAt, reservationId)
  return customerId .. ':' .. string.format('%013d', createdAt) .. ':' .. reservationId
end

-- The lex range of one customer's members: [min, max).
local function byCustomerRange(customerId)
  return '[' .. customerId .. ':', '(' .. customerId .. ';'
end
