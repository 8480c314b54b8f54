-- take_token(key, rate, burst, now): take one token of a sender's bucket (hash tokens, ts).
-- Returns 0 when the send may go, else the milliseconds until a token is there.
local function take_token(key, rate, burst, now)
  local cur = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(cur[1]) or burst
  local last = tonumber(cur[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - last) * rate / 1000)
  local wait = 0
  if tokens >= 1 then
    tokens = tokens - 1
  else
    wait = math.ceil((1 - tokens) * 1000 / rate)
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
  return wait
end
