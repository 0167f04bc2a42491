-- Ends the oldest live families of a user until at most `keep` are left. ARGV: prefix, user
-- id, keep, now. Families that ended on their own (key expired, or idle or absolute expiry at
-- or before `now`) are removed without counting or being returned. Returns the session
-- records of the families it ended.
local users = user_key(ARGV[2])
local keep, now = tonumber(ARGV[3]), tonumber(ARGV[4])
local live = {}
for _, sid in ipairs(redis.call('SMEMBERS', users)) do
  local f = redis.call('HMGET', family_key(sid), 'session', 'idle', 'expires')
  local session = f[1]
  if session and ((tonumber(f[2]) or 0) <= now or (tonumber(f[3]) or 0) <= now) then
    remove_family(sid)
    session = nil
  end
  if session then
    local ok, record = pcall(cjson.decode, session)
    local created = 0
    if ok and type(record) == 'table' and tonumber(record.created) then
      created = tonumber(record.created)
    end
    live[#live + 1] = {created, sid}
  else
    redis.call('SREM', users, sid)
  end
end
local ended = {}
if #live <= keep then return ended end
table.sort(live, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
for i = 1, #live - keep do
  local session = remove_family(live[i][2])
  if session then ended[#ended + 1] = session end
end
return ended
