-- LoginLimits::fail for the pair and the username, fail_client for the client; each record
-- expires when LoginLimits::expiry_ms (or, for the client, its arrival time) is reached.
local function save(key, count, last, locked)
  local expiry = math.max(last + FORGET_AFTER, locked)
  if expiry > now then
    redis.call('SET', key, string.format('%d:%d:%d', count, last, locked),
      'PX', string.format('%d', expiry - now))
  else
    redis.call('DEL', key)
  end
end
if with_username then
  local count, _, locked = load(KEYS[1])
  save(KEYS[1], math.min(count + 1, MAX_COUNT), now, locked)
  count, _, locked = load(KEYS[2])
  count = math.min(count + 1, MAX_COUNT)
  if count >= LOCK_AFTER and count % LOCK_AFTER == 0 then locked = now + LOCK_FOR end
  save(KEYS[2], count, now, locked)
end
local tat = math.max(arrival(), now) + CLIENT_INTERVAL
if tat > now then
  redis.call('SET', client_key, string.format('%d', tat), 'PX', string.format('%d', tat - now))
else
  redis.call('DEL', client_key)
end
return 1
