-- LimiterStore::attempt: the decision and, when it allows, the attempt counted: on the
-- registration rate for a registration; else one failure on each failure record
-- (LoginLimits::fail for the pair and the username, the client's failure rate) and, with a
-- username, one verification.
local decision = decide()
if decision[1] ~= 0 then return decision end
if registration then
  charge(register_key, REGISTER_INTERVAL)
  return decision
end
if with_username then
  local count, _, locked = load_or_zero(KEYS[1])
  save(KEYS[1], math.min(count + 1, MAX_COUNT), now, locked)
  count, _, locked = load_or_zero(KEYS[2])
  count = math.min(count + 1, MAX_COUNT)
  if count >= LOCK_AFTER and count % LOCK_AFTER == 0 then locked = now + LOCK_FOR end
  save(KEYS[2], count, now, locked)
  charge(verify_key, VERIFY_INTERVAL)
end
charge(client_key, CLIENT_INTERVAL)
return decision
