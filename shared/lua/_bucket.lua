-- take_tokens(key, rate, burst, now, cost): take cost tokens of a bucket (hash tokens, ts) that
-- refills rate tokens a second up to burst. A call may go when the bucket holds min(cost,
-- burst) tokens (at least 1); it then takes all cost, so the bucket may go below zero: a send
-- to more recipients than the burst pays its debt before the next one goes.
-- Returns 0 when the call may go, else the milliseconds until it may.
local function take_tokens(key, rate, burst, now, cost)
  local cur = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(cur[1]) or burst
  local last = tonumber(cur[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - last) * rate / 1000)
  local need = math.max(1, math.min(cost, burst))
  local wait = 0
  if tokens >= need then
    tokens = tokens - cost
  else
    wait = math.ceil((need - tokens) * 1000 / rate)
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) * 1000 / rate) + 1000)
  return wait
end
