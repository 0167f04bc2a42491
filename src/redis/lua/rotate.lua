-- Rotates a family's current token, or ends the family when a rotated one is presented,
-- unless it is the one the family was last rotated away from, presented again before that
-- rotation's retry deadline (a retry: nothing changes).
-- ARGV: prefix, old hash, new hash, now, idle expiry of the new token, how many rotated
-- hashes to remember, the new token sealed under the old one (hex; '' for no retry), the
-- retry deadline. Returns {code, session record or false, sealed successor or false}:
-- 0 invalid, 1 rotated, 2 reused (the family is gone), 3 the new hash is taken, 4 a retry.
local old, new = ARGV[2], ARGV[3]
local now, idle, remembered = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local sid = redis.call('GET', token_key(old))
if not sid then return {0, false, false} end
local family = family_key(sid)
local f = redis.call('HMGET', family, 'session', 'current', 'idle', 'expires', 'previous',
  'sealed', 'until')
if not f[1] then return {0, false, false} end
local expires = tonumber(f[4])
if tonumber(f[3]) <= now or expires <= now then return {0, false, false} end
if f[2] ~= old then
  if f[5] == old and tonumber(f[7]) > now then return {4, f[1], f[6]} end
  return {2, remove_family(sid), false}
end
if redis.call('EXISTS', token_key(new)) == 1 then return {3, false, false} end

if idle > expires then idle = expires end
redis.call('HSET', family, 'current', new, 'idle', int(idle))
if ARGV[7] ~= '' then
  redis.call('HSET', family, 'previous', old, 'sealed', ARGV[7], 'until', ARGV[8])
else
  redis.call('HDEL', family, 'previous', 'sealed', 'until')
end
redis.call('SET', token_key(new), sid, 'EX', int(expires - now))
local rotated = rotated_key(sid)
redis.call('RPUSH', rotated, old)
while redis.call('LLEN', rotated) > remembered do
  -- Forgotten: presenting it is now an unknown token, no longer a replay.
  redis.call('DEL', token_key(redis.call('LPOP', rotated)))
end
-- The family lives as long as its new token (a non-positive TTL deletes it at once).
redis.call('EXPIRE', family, int(idle - now))
redis.call('EXPIRE', rotated, int(idle - now))
return {1, f[1], false}
