-- Ends every family of a user but the one named `except` (empty: none kept).
-- ARGV: prefix, user id, except. Returns the ended families' session records.
local users = user_key(ARGV[2])
local except = ARGV[3]
local ended = {}
for _, sid in ipairs(redis.call('SMEMBERS', users)) do
  if sid ~= except then
    local session = remove_family(sid)
    if session then ended[#ended + 1] = session end
  end
end
if redis.call('SCARD', users) == 0 then redis.call('DEL', users) end
return ended
