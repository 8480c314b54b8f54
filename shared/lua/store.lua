-- Assign the next seq of one recipient and append the message to its inbox, atomically.
-- KEYS[1] seq counter, KEYS[2] inbox stream, KEYS[3] idempotency key (optional)
-- ARGV[1] packed message (no seq, no ts), ARGV[2] retention ms, ARGV[3] max messages,
-- ARGV[4] idempotency ttl s, ARGV[5] message id
-- Returns {1, seq, ts, id} for a new message, {0, seq, ts, id} for a repeat of a stored one.
if KEYS[3] then
  local prev = redis.call('HMGET', KEYS[3], 'seq', 'ts', 'id')
  if prev[1] then
    return {0, tonumber(prev[1]), tonumber(prev[2]), prev[3]}
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], seq .. '-0', 'm', ARGV[1], 'ts', now)
-- Age trim: drop the head of the inbox that is older than the retention, a page at a time.
local cutoff = now - tonumber(ARGV[2])
local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 100)
local keep = nil
for _, entry in ipairs(head) do
  local fields = entry[2]
  local ts = 0
  for i = 1, #fields, 2 do
    if fields[i] == 'ts' then ts = tonumber(fields[i + 1]) end
  end
  if ts >= cutoff then keep = entry[1]; break end
end
if keep == nil and #head > 0 then keep = seq .. '-0' end
if keep then redis.call('XTRIM', KEYS[2], 'MINID', keep) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if KEYS[3] then
  redis.call('HSET', KEYS[3], 'seq', seq, 'ts', now, 'id', ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
return {1, seq, now, ARGV[5]}
