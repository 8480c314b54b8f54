--! use _clock _guard _session _store
-- A p2p send in one call: the caller's checks (guard), then the store (store_one), the
-- recipient's sessions and, for a new message, its carbon in the sender's own inbox (unless
-- the sender writes to itself), its entry in the conversation's history and its reference (who
-- sent it where and when: edits and recalls look it up). The checks are skipped when ARGV[1]
-- is '0' (a delayed message firing: they were made when it was scheduled). A repeat (the
-- idempotency hash matched) stores nothing, the carbon included.
-- KEYS[1] revoked:<jti>, KEYS[2] the sender's bucket, KEYS[3] users zset,
-- KEYS[4] recipient's seq, KEYS[5] its inbox, KEYS[6] its session, KEYS[7] the history stream,
-- KEYS[8] sender's seq, KEYS[9] its inbox, KEYS[10] its session, KEYS[11] the message's ref,
-- KEYS[12] idempotency hash (optional)
-- ARGV[1] check (1/0), ARGV[2] rate, ARGV[3] burst, ARGV[4] recipient, ARGV[5] message (msgpack),
-- ARGV[6] retention ms, ARGV[7] max messages, ARGV[8] idempotency ttl s, ARGV[9] message id,
-- ARGV[10] history entry (msgpack, without ts: the entry's 'ts' field holds it),
-- ARGV[11] the carbon (msgpack), ARGV[12] the ref (msgpack, with the caller's clock as 'ts'),
-- ARGV[13] the ref's life ms
-- Returns a refusal of guard() or {'ok', new, seq, ts, id, nodes, status, carbon seq, sender's nodes}.
-- (Sender and recipient keys in one script: on a Redis Cluster this splits into guard.lua and
-- store_batch.lua, one call per slot.)
local now = now_ms()
if ARGV[1] == '1' then
  local refused = guard(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], now)
  if refused then return refused end
end
local retention = tonumber(ARGV[6])
local new, seq, ts, id, node, status = store_one(KEYS[4], KEYS[5], KEYS[6], KEYS[12] or false, ARGV[5], now,
  retention, ARGV[7], ARGV[8], ARGV[9])
local carbon_seq, sender_nodes = 0, ''
if new == 1 then
  if KEYS[8] ~= KEYS[4] then
    local _
    _, carbon_seq, _, _, sender_nodes = store_one(KEYS[8], KEYS[9], KEYS[10], false, ARGV[11], now,
      retention, ARGV[7], ARGV[8], ARGV[9])
  end
  redis.call('XADD', KEYS[7], 'MINID', '~', now - retention, '*', 'm', ARGV[10], 'ts', now)
  redis.call('PEXPIRE', KEYS[7], retention)
  redis.call('SET', KEYS[11], ARGV[12], 'PX', ARGV[13])
end
return {'ok', new, seq, ts, id, node, status, carbon_seq, sender_nodes}
