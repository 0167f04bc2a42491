-- The session record of the family of a current or rotated token. ARGV: prefix, token hash.
local sid = redis.call('GET', token_key(ARGV[2]))
if not sid then return false end
return redis.call('HGET', family_key(sid), 'session')
