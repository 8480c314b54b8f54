-- The status of an idempotent direct send: the first answer's, else "delivered" when the
-- recipient has a session now, "stored" otherwise, remembered next to the store's answer.
-- Runs right after store.lua in the same pipeline. KEYS[1] session hash, KEYS[2] idempotency hash
local status = redis.call('HGET', KEYS[2], 'status')
if status then return status end
if redis.call('EXISTS', KEYS[1]) == 1 then status = 'delivered' else status = 'stored' end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HSET', KEYS[2], 'status', status) end
return status
