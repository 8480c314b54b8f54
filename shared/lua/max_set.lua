-- Set a counter to ARGV[1] unless it already holds a larger value (ack cursors never go back).
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local new = tonumber(ARGV[1])
if new > cur then
  redis.call('SET', KEYS[1], new)
  if ARGV[2] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  return new
end
return cur
