-- Rotates a family's current token, or ends the family when a rotated one is presented.
-- ARGV: prefix, old hash, new hash, now, idle expiry of the new token, how many rotated
-- hashes to remember. Returns {code, session record or false}: 0 invalid, 1 rotated,
-- 2 reused (the family is gone), 3 the new hash is taken.
local old, new = ARGV[2], ARGV[3]
local now, idle, remembered = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local sid = redis.call('GET', token_key(old))
if not sid then return {0, false} end
local family = family_key(sid)
local f = redis.call('HMGET', family, 'session', 'current', 'idle', 'expires')
if not f[1] then return {0, false} end
local expires = tonumber(f[4])
if tonumber(f[3]) <= now or expires <= now then return {0, false} end
if f[2] ~= old then return {2, remove_family(sid)} end
if redis.call('EXISTS', token_key(new)) == 1 then return {3, false} end

if idle > expires then idle = expires end
redis.call('HSET', family, 'current', new, 'idle', int(idle))
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
return {1, f[1]}
