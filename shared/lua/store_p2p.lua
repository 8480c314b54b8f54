--! use _clock _session _store
-- A p2p message stored for its recipient, on a Redis Cluster (one Redis: send.lua does it all
-- in one call): the recipient exists, then store_one(). Every key is in the recipient's slot.
-- KEYS[1] recipient's seq, KEYS[2] its inbox, KEYS[3] its session, KEYS[4] the users zset of its
-- bucket, KEYS[5] idempotency hash (optional)
-- ARGV[1] message (msgpack), ARGV[2] retention ms, ARGV[3] max messages, ARGV[4] idempotency
-- ttl s, ARGV[5] message id, ARGV[6] the recipient ('' = not checked: a delayed message firing)
-- Returns {'unknown_user'} or {'ok', new, seq, ts, id, nodes, status} (as send.lua's).
local to = ARGV[6]
if to ~= '' and not redis.call('ZSCORE', KEYS[4], to) then return {'unknown_user'} end
local new, seq, ts, id, node, status = store_one(KEYS[1], KEYS[2], KEYS[3], KEYS[5] or false, ARGV[1],
  now_ms(), tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5])
return {'ok', new, seq, ts, id, node, status}
