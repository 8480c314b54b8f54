--! use _clock _guard
-- May the caller send (token not revoked, rate-limit tokens, the recipient exists)?
-- KEYS[1..4] and ARGV[1..6]: the checks' inputs (lua/_guard.lua); the route checks the
-- recipient in the same round trip instead (ARGV[6] ''), so all of KEYS are the sender's slot.
-- KEYS[5] (optional, one Redis only: another slot): the audience, a set (a group's members):
-- the cost is then its size less ARGV[5] (the members that are not sent to: the sender).
-- Returns {'ok'} or the refusal of guard().
local audience = KEYS[5]
if audience then
  ARGV[5] = math.max(1, redis.call('SCARD', audience) - tonumber(ARGV[5]))
end
return guard(now_ms()) or {'ok'}
