-- Claim the due delayed jobs for a lease: push their score to now + lease and return them.
-- Whoever claims a job fires it and then ZREMs it; if it dies first, the job falls due
-- again when the lease ends and another replica fires it (the store is idempotent per job).
-- KEYS[1] delayed zset; ARGV[1] lease ms, ARGV[2] most jobs to claim
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, job in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), job)
end
return due
