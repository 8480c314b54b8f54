--! use _bucket
-- guard(now): may this caller send? The checks' inputs come first in a script's KEYS and ARGV:
-- KEYS[1] revoked:{u}:<jti>, KEYS[2] the sender's token epoch, KEYS[3] the sender's bucket,
-- KEYS[4] the users zset of the recipient's user bucket (of the sender's when there is no
-- recipient to check: the keys then share the sender's slot); ARGV[1] when the token was issued (ms; '' = no token: a server-side
-- push, whose 'system' bucket is all there is to check), ARGV[2] its jti, ARGV[3] rate
-- (0 = no limit), ARGV[4] burst, ARGV[5] cost (rate-limit tokens: one per recipient),
-- ARGV[6] the recipient ('' = none to check).
-- Returns nil when it may, else the refusal: {'revoked'} (the token, or every token of the
-- sender issued before its epoch but the epoch's 'keep'), {'rate_limited', wait ms} or
-- {'unknown_user'}. Tokens are taken before the recipient is checked, so a send to an unknown
-- user costs one too.
local function guard(now)
  if ARGV[1] ~= '' then
    if redis.call('EXISTS', KEYS[1]) == 1 then return {'revoked'} end
    local epoch = redis.call('HMGET', KEYS[2], 'at', 'keep')
    if epoch[1] and tonumber(ARGV[1]) < tonumber(epoch[1]) and epoch[2] ~= ARGV[2] then
      return {'revoked'}
    end
  end
  local rate = tonumber(ARGV[3])
  if rate > 0 then
    local wait = take_tokens(KEYS[3], rate, tonumber(ARGV[4]), now, tonumber(ARGV[5]))
    if wait > 0 then return {'rate_limited', wait} end
  end
  local to = ARGV[6]
  if to ~= '' and not redis.call('ZSCORE', KEYS[4], to) then return {'unknown_user'} end
  return nil
end
