-- Starts a family. ARGV: prefix, sid, user, session record, token hash, idle expiry,
-- absolute expiry, now. Returns 0 when the session id or the token is taken, else 1.
local sid, user, session, token = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local idle, expires, now = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
if idle > expires then idle = expires end
if redis.call('EXISTS', family_key(sid), token_key(token)) > 0 then return 0 end
-- Dead on arrival: there is nothing to keep.
if idle <= now then return 1 end

local family = family_key(sid)
redis.call('HSET', family, 'session', session, 'user', user, 'current', token,
  'idle', int(idle), 'expires', int(expires))
redis.call('EXPIRE', family, int(idle - now))
redis.call('SET', token_key(token), sid, 'EX', int(expires - now))

-- The user's set follows their live families: ids of ended ones are dropped here.
local users = user_key(user)
for _, other in ipairs(redis.call('SMEMBERS', users)) do
  if redis.call('EXISTS', family_key(other)) == 0 then redis.call('SREM', users, other) end
end
redis.call('SADD', users, sid)
if redis.call('TTL', users) < expires - now then
  redis.call('EXPIRE', users, int(expires - now))
end
return 1
