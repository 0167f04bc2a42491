-- LimiterStore::refund: the failures attempt counted, given back: LoginLimits::refund on each
-- failure record that is still there, one failure on the client's rate (the verification
-- stays counted), or one registration.
local function refund(key, account)
  local count, last, locked = load(key)
  if not count then return end
  if account and count >= LOCK_AFTER and count % LOCK_AFTER == 0 then locked = 0 end
  if count > 0 then count = count - 1 end
  if count > 0 or locked > 0 then
    save(key, count, last, locked)
  else
    redis.call('DEL', key)
  end
end
if registration then
  give_back(register_key, REGISTER_INTERVAL)
  return 1
end
if with_username then
  refund(KEYS[1], false)
  refund(KEYS[2], true)
end
give_back(client_key, CLIENT_INTERVAL)
return 1
