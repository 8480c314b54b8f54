--! use _session
-- Remove the session of the user's device only if it is still the given connection (or, with
-- conn '*', still on the given node), so a stale close never removes a newer login. Returns 1
-- if removed. The user leaves the online set with its last device.
-- KEYS[1] session hash, KEYS[2] the node's session index of the user's bucket, KEYS[3] the
-- bucket's online zset (all three in the slot of the user's bucket)
-- ARGV[1] node id, ARGV[2] connection id or '*', ARGV[3] username, ARGV[4] device
local member = ARGV[3] .. '/' .. ARGV[4]
local cur = redis.call('HGET', KEYS[1], ARGV[4])
local node, conn = nil, nil
if cur then node, conn = session_parse(cur) end
if node == ARGV[1] and (ARGV[2] == '*' or conn == ARGV[2]) then
  redis.call('HDEL', KEYS[1], ARGV[4])
  if redis.call('HLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[3], ARGV[3]) end
  redis.call('SREM', KEYS[2], member)
  return 1
end
if node ~= ARGV[1] then redis.call('SREM', KEYS[2], member) end
return 0
