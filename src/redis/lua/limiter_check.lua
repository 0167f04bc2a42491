-- LoginLimits::decide. Returns {reason, wait ms}: reason 0 allows, 1 account locked,
-- 2 client and username, 3 username, 4 client. The longest wait wins; of equal waits, the
-- later rule (as Iterator::max_by_key).
local reason, longest = 0, 0
local function consider(code, until_ms)
  if until_ms > now and until_ms - now >= longest then
    reason, longest = code, until_ms - now
  end
end
if with_username then
  local pair_count, pair_last = load(KEYS[1])
  local account_count, account_last, account_locked = load(KEYS[2])
  consider(1, account_locked)
  consider(2, pair_last + delay(PAIR_FREE, PAIR_DELAYS, pair_count))
  consider(3, account_last + delay(ACCOUNT_FREE, ACCOUNT_DELAYS, account_count))
end
consider(4, math.max(arrival() - CLIENT_TOLERANCE, 0))
return {reason, longest}
