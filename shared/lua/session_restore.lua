--! use _session
-- Put back the session of a live connection that was swept (its node looked dead for a while).
-- KEYS[1] session hash, KEYS[2] the node's session index of the user's bucket, KEYS[3] the
-- bucket's online zset (all three in the slot of the user's bucket)
-- ARGV[1] node id, ARGV[2] connection id, ARGV[3] now ms, ARGV[4] username, ARGV[5] device
-- Returns 1 if restored, 0 if it was still there, -1 if another connection owns the session now.
local member = ARGV[4] .. '/' .. ARGV[5]
local cur = redis.call('HGET', KEYS[1], ARGV[5])
if cur then
  local node, conn = session_parse(cur)
  if node == ARGV[1] and conn == ARGV[2] then
    redis.call('SADD', KEYS[2], member)
    return 0
  end
  return -1
end
redis.call('HSET', KEYS[1], ARGV[5], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])
redis.call('SADD', KEYS[2], member)
redis.call('ZADD', KEYS[3], 0, ARGV[4])
return 1
