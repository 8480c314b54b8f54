--! use _session
-- Make this connection the session of the user's device. Returns the sessions it ends, as a
-- flat list of (node, conn, device, reason): the same device's older connection
-- ('duplicate_login') and, past the device limit, the longest-connected other devices
-- ('device_limit'); they are removed here, their nodes kick them.
-- KEYS[1] session hash, KEYS[2] the node's session index of the user's bucket, KEYS[3] the
-- bucket's online zset (all three in the slot of the user's bucket)
-- ARGV[1] node id, ARGV[2] connection id, ARGV[3] now ms, ARGV[4] username, ARGV[5] device,
-- ARGV[6] most devices at once
local device = ARGV[5]
local out = {}
local old = redis.call('HGET', KEYS[1], device)
if old then
  local node, conn = session_parse(old)
  if node then
    out = {node, conn, device, 'duplicate_login'}
  end
end
redis.call('HSET', KEYS[1], device, ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4] .. '/' .. device)
redis.call('ZADD', KEYS[3], 0, ARGV[4])
local limit = tonumber(ARGV[6])
local all = redis.call('HGETALL', KEYS[1])
local count = #all / 2
while count > limit do
  local oldest, oldest_since, oldest_node, oldest_conn = nil, nil, nil, nil
  for i = 1, #all, 2 do
    if all[i] ~= device and all[i + 1] then
      local node, conn, since = session_parse(all[i + 1])
      since = since or 0
      if oldest == nil or since < oldest_since then
        oldest, oldest_since, oldest_node, oldest_conn = all[i], since, node or '', conn or ''
      end
    end
  end
  if oldest == nil then break end
  redis.call('HDEL', KEYS[1], oldest)
  for i = 1, #all, 2 do
    if all[i] == oldest then all[i + 1] = false end
  end
  out[#out + 1] = oldest_node
  out[#out + 1] = oldest_conn
  out[#out + 1] = oldest
  out[#out + 1] = 'device_limit'
  count = count - 1
end
return out
