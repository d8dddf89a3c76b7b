--[[
  Idempotency records: "<fingerprint>\n<code>\n<payloadJson>" under the
  request's own key (k.idempotency), with a TTL: 2xx answers are kept
  request.okTtl seconds (24 h), refusals request.refusalTtl seconds
  (IDEMPOTENCY_REFUSAL_TTL_SECONDS, at least 1 h). The fingerprint is a hash of
  the canonical request (computed by the caller), so the same key with
  another body is detected.

  request = {fingerprint, okTtl, refusalTtl}
]]
--- @include "includes/numbers"
--- @include "includes/reply"

-- The stored answer as a reply (replayed '1'), a reuse refusal, or nil.
local function storedAnswer(k, request, now, holdsExpired)
  local stored = redis.call('GET', k.idempotency)
  if not stored then return nil end
  local first = string.find(stored, '\n', 1, true)
  if string.sub(stored, 1, first - 1) ~= request.fingerprint then
    return reply('IDEMPOTENCY_KEY_REUSED', now, {}, holdsExpired)
  end
  local second = string.find(stored, '\n', first + 1, true)
  return {string.sub(stored, first + 1, second - 1), int(now), '1', string.sub(stored, second + 1), int(holdsExpired)}
end

local function storeAnswer(k, request, code, now, payload, holdsExpired)
  local json = type(payload) == 'string' and payload or cjson.encode(payload)
  local ttl = code == 'OK' and request.okTtl or request.refusalTtl
  redis.call('SET', k.idempotency, request.fingerprint .. '\n' .. code .. '\n' .. json, 'EX', ttl)
  return {code, int(now), '0', json, int(holdsExpired)}
end
