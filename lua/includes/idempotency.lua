--[[
  Idempotency records: "<fingerprint>\n<code>\n<payloadJson>" under the key's
  own Redis key, with a TTL. The fingerprint is a hash of the canonical request
  (computed by the caller), so the same key with another body is detected.
]]
local function storedAnswer(idemKey, fingerprint, now)
  local stored = redis.call('GET', idemKey)
  if not stored then return nil end
  local first = string.find(stored, '\n', 1, true)
  if string.sub(stored, 1, first - 1) ~= fingerprint then
    return reply('IDEMPOTENCY_KEY_REUSED', now, {}, false)
  end
  local second = string.find(stored, '\n', first + 1, true)
  return {string.sub(stored, first + 1, second - 1), int(now), '1', string.sub(stored, second + 1), int(holdsExpiredHere)}
end

local function storeAnswer(idemKey, fingerprint, ttlSeconds, code, now, payload)
  local json = cjson.encode(payload)
  redis.call('SET', idemKey, fingerprint .. '\n' .. code .. '\n' .. json, 'EX', ttlSeconds)
  return {code, int(now), '0', json, int(holdsExpiredHere)}
end
