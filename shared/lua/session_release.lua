-- Remove the user's session only if it is still the given connection (or, with conn '*',
-- still on the given node), so a stale close never removes a newer login. Returns 1 if removed.
-- KEYS[1] session hash, KEYS[2] the node's session index, KEYS[3] online zset
-- ARGV[1] node id, ARGV[2] connection id or '*', ARGV[3] username
local cur = redis.call('HMGET', KEYS[1], 'node', 'conn')
if cur[1] == ARGV[1] and (ARGV[2] == '*' or cur[2] == ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[3])
  redis.call('SREM', KEYS[2], ARGV[3])
  return 1
end
if cur[1] ~= ARGV[1] then redis.call('SREM', KEYS[2], ARGV[3]) end
return 0
