-- Make this connection the user's session; return the one it replaces (node, conn) or {}.
-- KEYS[1] session hash, KEYS[2] this node's session index, KEYS[3] online zset
-- ARGV[1] node id, ARGV[2] connection id, ARGV[3] now ms, ARGV[4] username
local old = redis.call('HMGET', KEYS[1], 'node', 'conn')
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'conn', ARGV[2], 'since', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], 0, ARGV[4])
if old[1] then return {old[1], old[2]} end
return {}
