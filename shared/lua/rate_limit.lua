-- Token bucket of one sender: take one token, or say how long until one is there.
-- KEYS[1] bucket hash (tokens, ts); ARGV[1] rate per second, ARGV[2] burst
-- Returns 0 when the send may go, else the milliseconds until a token is available.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(cur[1]) or burst
local last = tonumber(cur[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate / 1000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
