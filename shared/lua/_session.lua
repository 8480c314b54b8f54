-- A user's sessions are one hash, a field per device: '<node> <conn> <since ms>'. The node's
-- session index holds '<user>/<device>' (device names have no '/').
-- session_parse(value) -> node, conn, since; session_nodes(session_key) -> the nodes the user
-- has a session on, space-separated ('' when offline).
local function session_parse(value)
  local node, conn, since = string.match(value, '^(%S+) (%S+) (%d+)$')
  return node, conn, tonumber(since)
end

local function session_nodes(session_key)
  local values = redis.call('HVALS', session_key)
  if #values == 0 then return '' end
  if #values == 1 then return string.match(values[1], '^%S+') end
  local seen, out = {}, {}
  for _, value in ipairs(values) do
    local node = string.match(value, '^%S+')
    if not seen[node] then
      seen[node] = true
      out[#out + 1] = node
    end
  end
  return table.concat(out, ' ')
end
