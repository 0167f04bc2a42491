-- LimiterStore::attempt: the decision and, when it allows, one failure counted on each record
-- (LoginLimits::fail for the pair and the username, fail_client for the client).
local decision = decide()
if decision[1] ~= 0 then return decision end
if with_username then
  local count, _, locked = load_or_zero(KEYS[1])
  save(KEYS[1], math.min(count + 1, MAX_COUNT), now, locked)
  count, _, locked = load_or_zero(KEYS[2])
  count = math.min(count + 1, MAX_COUNT)
  if count >= LOCK_AFTER and count % LOCK_AFTER == 0 then locked = now + LOCK_FOR end
  save(KEYS[2], count, now, locked)
end
save_arrival(math.max(arrival(), now) + CLIENT_INTERVAL)
return decision
