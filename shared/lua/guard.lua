--! use _clock _guard
-- May the caller send (token not revoked, rate-limit tokens, the recipient exists)?
-- KEYS[1..4] and ARGV[1..6]: the checks' inputs (lua/_guard.lua); KEYS[5] (optional): the
-- audience, a set (a group's members) or a zset (everyone online): the cost is then its size
-- less ARGV[5] (the members that are not sent to: the sender).
-- Returns {'ok'} or the refusal of guard().
local audience = KEYS[5]
if audience then
  local size
  if redis.call('TYPE', audience).ok == 'zset' then
    size = redis.call('ZCARD', audience)
  else
    size = redis.call('SCARD', audience)
  end
  ARGV[5] = math.max(1, size - tonumber(ARGV[5]))
end
return guard(now_ms()) or {'ok'}
