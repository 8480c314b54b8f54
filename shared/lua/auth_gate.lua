--! use _clock _bucket
-- May this client address register or try a password now?
-- KEYS[1] the address's bucket, KEYS[2] (logins only) the failure count of (username, address)
-- ARGV[1] calls a minute (0 = off), ARGV[2] burst, ARGV[3] most failures, ARGV[4] back-off ms
-- Returns {'ok'}, {'rate_limited', wait ms} (the address calls too often) or {'backoff', wait
-- ms} (too many wrong passwords for this username from this address). A try counts as a
-- failure before its password is checked (a right one clears the count), so N parallel guesses
-- count N and at most ARGV[3] of them are checked. A refused try does not push the wait out.
local now = now_ms()
local rate = tonumber(ARGV[1])
if rate > 0 then
  local wait = take_tokens(KEYS[1], rate / 60, tonumber(ARGV[2]), now, 1)
  if wait > 0 then return {'rate_limited', wait} end
end
if KEYS[2] then
  local tries = redis.call('INCR', KEYS[2])
  if tries > tonumber(ARGV[3]) then
    return {'backoff', math.max(1, redis.call('PTTL', KEYS[2]))}
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return {'ok'}
