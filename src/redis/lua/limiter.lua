-- Shared by the limiter scripts, after the constants of the policy (LoginLimits) that the
-- store prepends: PAIR_FREE, PAIR_DELAYS, ACCOUNT_FREE, ACCOUNT_DELAYS, LOCK_AFTER,
-- LOCK_FOR, CLIENT_INTERVAL, CLIENT_TOLERANCE, VERIFY_INTERVAL, VERIFY_TOLERANCE,
-- REGISTER_INTERVAL, REGISTER_TOLERANCE, FORGET_AFTER (milliseconds; the delay tables hold the
-- backoff after free + 1, free + 2, ... failures, the last one repeating).
-- ARGV[1]: now (Unix ms); ARGV[2]: the action, 'l' (login) or 'r' (registration).
-- KEYS of a login with a username: the (client, username) record, the username's record, the
-- client's failure arrival time, the client's verification arrival time; of a login without
-- one: the client's failure arrival time; of a registration: the client's registration
-- arrival time. A failure record is "<count>:<last failure ms>:<locked until ms>"; an arrival
-- time (GCRA) is "<ms>".
local now = tonumber(ARGV[1])
local registration = ARGV[2] == 'r'
local with_username = #KEYS == 4
local client_key = KEYS[1]
if with_username then client_key = KEYS[3] end
local verify_key = KEYS[4]
local register_key = KEYS[1]
local MAX_COUNT = 4294967295

local function load(key)
  local value = redis.call('GET', key)
  if not value then return nil end
  local count, last, locked = string.match(value, '^(%d+):(%d+):(%d+)$')
  if not count then return nil end
  return tonumber(count), tonumber(last), tonumber(locked)
end

local function load_or_zero(key)
  local count, last, locked = load(key)
  if not count then return 0, 0, 0 end
  return count, last, locked
end

local function delay(free, delays, count)
  if count <= free then return 0 end
  local i = count - free
  if i > #delays then i = #delays end
  return delays[i]
end

-- The end of a record's backoff; none within the free failures, even when the record's time is
-- ahead of now (another instance's clock).
local function backoff_end(last, free, delays, count)
  local d = delay(free, delays, count)
  if d == 0 then return 0 end
  return last + d
end

local function arrival(key)
  return tonumber(redis.call('GET', key) or '0') or 0
end

-- A failure record, kept until LoginLimits::expiry_ms.
local function save(key, count, last, locked)
  local expiry = math.max(last + FORGET_AFTER, locked)
  if expiry > now then
    redis.call('SET', key, string.format('%d:%d:%d', count, last, locked),
      'PX', string.format('%d', expiry - now))
  else
    redis.call('DEL', key)
  end
end

-- An arrival time, kept until it passes.
local function save_arrival(key, tat)
  if tat > now then
    redis.call('SET', key, string.format('%d', tat), 'PX', string.format('%d', tat - now))
  else
    redis.call('DEL', key)
  end
end

-- Rate::charge: one event on the GCRA at key.
local function charge(key, interval)
  save_arrival(key, math.max(arrival(key), now) + interval)
end

-- Rate::refund: one event given back, when the record is still there.
local function give_back(key, interval)
  if redis.call('EXISTS', key) == 1 then
    save_arrival(key, math.max(arrival(key) - interval, 0))
  end
end

-- LoginLimits::decide. Returns {reason, wait ms}: reason 0 allows, 1 account locked,
-- 2 client and username, 3 username, 4 client, 5 verifications, 6 registrations. The longest
-- wait wins; of equal waits, the later rule (as Iterator::max_by_key).
local function decide()
  local reason, longest = 0, 0
  local function consider(code, until_ms)
    if until_ms > now and until_ms - now >= longest then
      reason, longest = code, until_ms - now
    end
  end
  if registration then
    consider(6, math.max(arrival(register_key) - REGISTER_TOLERANCE, 0))
    return {reason, longest}
  end
  if with_username then
    local pair_count, pair_last = load_or_zero(KEYS[1])
    local account_count, account_last, account_locked = load_or_zero(KEYS[2])
    consider(1, account_locked)
    consider(2, backoff_end(pair_last, PAIR_FREE, PAIR_DELAYS, pair_count))
    consider(3, backoff_end(account_last, ACCOUNT_FREE, ACCOUNT_DELAYS, account_count))
  end
  consider(4, math.max(arrival(client_key) - CLIENT_TOLERANCE, 0))
  if with_username then
    consider(5, math.max(arrival(verify_key) - VERIFY_TOLERANCE, 0))
  end
  return {reason, longest}
end
