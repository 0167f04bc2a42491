-- The session record of a live family whose current token this is. ARGV: prefix, token
-- hash, now. Returns the record or false.
local token, now = ARGV[2], tonumber(ARGV[3])
local sid = redis.call('GET', token_key(token))
if not sid then return false end
local f = redis.call('HMGET', family_key(sid), 'session', 'current', 'idle', 'expires')
if not f[1] or f[2] ~= token then return false end
if tonumber(f[3]) <= now or tonumber(f[4]) <= now then return false end
return f[1]
