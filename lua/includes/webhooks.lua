--[[
  Webhook events (src/webhooks/): recorded in the product's events stream
  (k.events), in the same atomic step as the change they describe, and only
  when the caller says webhooks are on (an ARGV flag), so a deployment without
  WEBHOOK_URL writes nothing more. The webhook drain reads the stream through
  a consumer group; an entry of its own carries `webhook` (the event type)
  and `data` (JSON). reservation.expired needs no entry of its own: the
  transition entry (to = expired) is it, and the record no longer changes.
]]
--- @include "includes/numbers"
--- @include "includes/statuses"

local function recordWebhook(k, eventType, now, dataJson)
  redis.call('XADD', k.events, 'MAXLEN', '~', EVENTS_MAXLEN_ARG, '*',
    'webhook', eventType, 'data', dataJson, 'at', int(now))
end
