--! use _clock _guard
-- May the caller send (token not revoked, a rate-limit token, the recipient exists)?
-- KEYS[1] revoked:<jti>, KEYS[2] the sender's bucket, KEYS[3] users zset
-- ARGV[1] rate (0 = off), ARGV[2] burst, ARGV[3] recipient or ''
-- Returns {'ok'} or the refusal of guard().
return guard(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], now_ms())
  or {'ok'}
