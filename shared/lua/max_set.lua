-- Set each of KEYS to ARGV[1] unless it already holds a larger value (ack cursors never go
-- back; a device's cursor and its user's are set together). ARGV[2]: expiry ms (optional).
-- Returns the first key's value afterwards.
local new = tonumber(ARGV[1])
local out = nil
for _, key in ipairs(KEYS) do
  local cur = tonumber(redis.call('GET', key) or '0')
  if new > cur then
    redis.call('SET', key, new)
    if ARGV[2] then redis.call('PEXPIRE', key, ARGV[2]) end
    cur = new
  end
  if out == nil then out = cur end
end
return out
