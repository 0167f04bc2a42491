-- Shared by the refresh-family scripts (prepended to each). ARGV[1] is the key prefix.
--   <prefix>rf:s:<sid>   hash: session (JSON), user, current (hex token hash), idle, expires;
--                        after a rotation that kept a retry, also previous (the hash it
--                        replaced), sealed (the new token sealed under the old, hex), until
--   <prefix>rf:r:<sid>   list: rotated token hashes, oldest first
--   <prefix>rf:t:<hash>  string: the session id of a current or rotated token
--   <prefix>rf:u:<user>  set: the user's session ids
-- Times are Unix seconds, passed as decimal strings. Numbers go back to Redis through
-- string.format('%d'), never tostring (which would print large ones in exponent form).
local prefix = ARGV[1]

local function family_key(sid) return prefix .. 'rf:s:' .. sid end
local function rotated_key(sid) return prefix .. 'rf:r:' .. sid end
local function token_key(hash) return prefix .. 'rf:t:' .. hash end
local function user_key(user) return prefix .. 'rf:u:' .. user end
local function int(n) return string.format('%d', n) end

-- Deletes a family and every key that points at it; returns its session record, or false
-- when there was no such family.
local function remove_family(sid)
  local fields = redis.call('HMGET', family_key(sid), 'session', 'user', 'current')
  if not fields[1] then return false end
  for _, hash in ipairs(redis.call('LRANGE', rotated_key(sid), 0, -1)) do
    redis.call('DEL', token_key(hash))
  end
  redis.call('DEL', token_key(fields[3]), family_key(sid), rotated_key(sid))
  redis.call('SREM', user_key(fields[2]), sid)
  return fields[1]
end

