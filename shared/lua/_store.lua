-- store_one(seq_key, inbox_key, session_key, idem_key, m, now, retention_ms, max_count,
--           idem_ttl_s, msg_id): assign the recipient's next seq and append the message to its
-- inbox, atomically; idem_key (or false) makes it idempotent. Returns new (1/0), seq, ts, id,
-- nodes (the nodes of the recipient's device sessions, space-separated; '' when it has none;
-- needs the _session fragment) and status ('delivered' or 'stored'; for a
-- repeat, the first answer's).
--
-- Age trim: entry ids are '<seq>-0', so the age of the head is in its 'ts' field. The head
-- entry is read on every TRIM_EVERY-th store of a recipient only, and a page of the head is
-- read (and trimmed) only when the head is older than the retention: each old entry is looked
-- at about once, and an old entry outlives the retention by at most TRIM_EVERY - 1 stores
-- (the inbox as a whole still expires CIM_RETENTION_S after its last store).
local TRIM_EVERY = 16
local function trim_age(inbox_key, cutoff, seq)
  if seq % TRIM_EVERY ~= 0 then return end
  local head = redis.call('XRANGE', inbox_key, '-', '+', 'COUNT', 1)
  if #head == 0 or tonumber(head[1][2][4]) >= cutoff then return end
  local page = redis.call('XRANGE', inbox_key, '-', '+', 'COUNT', 100)
  local keep = nil
  for _, entry in ipairs(page) do
    if tonumber(entry[2][4]) >= cutoff then keep = entry[1]; break end
  end
  if keep == nil then  -- the whole page is old: drop it; the rest goes at the next checks
    keep = (tonumber(string.match(page[#page][1], '^%d+')) + 1) .. '-0'
  end
  redis.call('XTRIM', inbox_key, 'MINID', keep)
end

local function store_one(seq_key, inbox_key, session_key, idem_key, m, now, retention_ms, max_count,
                         idem_ttl_s, msg_id)
  local node = session_nodes(session_key)
  local status = 'stored'
  if node ~= '' then status = 'delivered' end
  if idem_key then
    local prev = redis.call('HMGET', idem_key, 'seq', 'ts', 'id', 'status')
    if prev[1] then
      return 0, tonumber(prev[1]), tonumber(prev[2]), prev[3], node, prev[4] or status
    end
  end
  local seq = redis.call('INCR', seq_key)
  redis.call('XADD', inbox_key, 'MAXLEN', max_count, seq .. '-0', 'm', m, 'ts', now)
  trim_age(inbox_key, now - retention_ms, seq)
  redis.call('PEXPIRE', inbox_key, retention_ms)
  if idem_key then
    redis.call('HSET', idem_key, 'seq', seq, 'ts', now, 'id', msg_id, 'status', status)
    redis.call('EXPIRE', idem_key, idem_ttl_s)
  end
  return 1, seq, now, msg_id, node, status
end
