--! use _bucket
-- guard(revoked_key, bucket_key, users_key, rate, burst, to, now): may this sender send?
-- Returns nil when it may, else the refusal: {'revoked'}, {'rate_limited', wait ms} or
-- {'unknown_user'}. rate 0 = no limit; to '' = no recipient to check. The token is taken
-- before the recipient is checked, so a send to an unknown user costs one too.
local function guard(revoked_key, bucket_key, users_key, rate, burst, to, now)
  if redis.call('EXISTS', revoked_key) == 1 then return {'revoked'} end
  if rate > 0 then
    local wait = take_token(bucket_key, rate, burst, now)
    if wait > 0 then return {'rate_limited', wait} end
  end
  if to ~= '' and not redis.call('ZSCORE', users_key, to) then return {'unknown_user'} end
  return nil
end
