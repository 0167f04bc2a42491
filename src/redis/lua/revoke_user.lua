-- Ends every family of a user. ARGV: prefix, user id. Returns their session records.
local users = user_key(ARGV[2])
local ended = {}
for _, sid in ipairs(redis.call('SMEMBERS', users)) do
  local session = remove_family(sid)
  if session then ended[#ended + 1] = session end
end
redis.call('DEL', users)
return ended
