--! use _clock _guard _session _store
-- A p2p send in one call: the caller's checks (guard), then the store (store_one), the
-- recipient's sessions and, for a new message, its carbon in the sender's own inbox (unless
-- the sender writes to itself), its entry in the conversation's history and its reference (who
-- sent it where and when: edits and recalls look it up). The checks are skipped when ARGV[1]
-- is '' (a delayed message firing: they were made when it was scheduled). A repeat (the
-- idempotency hash matched) stores nothing, the carbon included.
-- KEYS[1..4] and ARGV[1..6]: the checks' (lua/_guard.lua); then
-- KEYS[5] recipient's seq, KEYS[6] its inbox, KEYS[7] its session, KEYS[8] the history stream,
-- KEYS[9] sender's seq, KEYS[10] its inbox, KEYS[11] its session, KEYS[12] the message's ref,
-- KEYS[13] idempotency hash (optional)
-- ARGV[7] message (msgpack), ARGV[8] retention ms, ARGV[9] max messages, ARGV[10] idempotency
-- ttl s, ARGV[11] message id, ARGV[12] history entry (msgpack, without ts: the entry's 'ts'
-- field holds it), ARGV[13] most entries a history stream keeps, ARGV[14] the carbon
-- (msgpack), ARGV[15] the ref (msgpack, with the caller's clock as 'ts'), ARGV[16] the ref's
-- life ms
-- Returns a refusal of guard() or {'ok', new, seq, ts, id, nodes, status, carbon seq, sender's nodes}.
-- Sender and recipient keys in one script: one Redis only. On a Redis Cluster the route runs
-- guard.lua (the sender's slot), store_p2p.lua (the recipient's), then the carbon
-- (store_batch.lua) and the history and ref commands (cim_route/send.py).
local now = now_ms()
if ARGV[1] ~= '' then
  local refused = guard(now)
  if refused then return refused end
end
local retention = tonumber(ARGV[8])
local new, seq, ts, id, node, status = store_one(KEYS[5], KEYS[6], KEYS[7], KEYS[13] or false, ARGV[7], now,
  retention, ARGV[9], ARGV[10], ARGV[11])
local carbon_seq, sender_nodes = 0, ''
if new == 1 then
  if KEYS[9] ~= KEYS[5] then
    local _
    _, carbon_seq, _, _, sender_nodes = store_one(KEYS[9], KEYS[10], KEYS[11], false, ARGV[14], now,
      retention, ARGV[9], ARGV[10], ARGV[11])
  end
  redis.call('XADD', KEYS[8], 'MINID', '~', now - retention, '*', 'm', ARGV[12], 'ts', now)
  redis.call('XTRIM', KEYS[8], 'MAXLEN', ARGV[13])
  redis.call('PEXPIRE', KEYS[8], retention)
  redis.call('SET', KEYS[12], ARGV[15], 'PX', ARGV[16])
end
return {'ok', new, seq, ts, id, node, status, carbon_seq, sender_nodes}
