--! use _clock _session _store
-- One message stored for a batch of recipients in one call, each with its own seq.
-- KEYS: per recipient, in order, its seq, inbox and session keys, plus its idempotency hash
-- when ARGV[5] is '1' (3 or 4 keys per recipient, all with the recipient's {user} tag: a
-- Redis Cluster caller batches the recipients of one slot).
-- ARGV[1] message (msgpack, the same for all: the recipient is the inbox's owner),
-- ARGV[2] retention ms, ARGV[3] max messages, ARGV[4] idempotency ttl s, ARGV[5] idempotent 1/0,
-- ARGV[6] message id, ARGV[7] (optional) a carbon (msgpack): stored instead of ARGV[1] for the
-- LAST recipient of KEYS, the sender (a carbon keeps its addressee as 'to')
-- Returns {now, ts, id, then per recipient: new, seq, nodes (space-separated)}: now is when it entered the new
-- recipients' inboxes; ts and id are the first repeat's when a recipient already had the
-- message (a retry), else now and the new id.
local now = now_ms()
local per = 3
if ARGV[5] == '1' then per = 4 end
local retention, max_count = tonumber(ARGV[2]), ARGV[3]
local out = {now, now, ARGV[6]}
local repeated = false
for i = 1, #KEYS, per do
  local idem = false
  if per == 4 then idem = KEYS[i + 3] end
  local m = ARGV[1]
  if ARGV[7] and i + per > #KEYS then m = ARGV[7] end
  local new, seq, ts, id, node = store_one(KEYS[i], KEYS[i + 1], KEYS[i + 2], idem, m, now,
    retention, max_count, ARGV[4], ARGV[6])
  if new == 0 and not repeated then
    repeated = true
    out[2] = ts
    out[3] = id
  end
  out[#out + 1] = new
  out[#out + 1] = seq
  out[#out + 1] = node
end
return out
