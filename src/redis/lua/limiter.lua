-- Shared by the limiter scripts, after the constants of the policy (LoginLimits) that the
-- store prepends: PAIR_FREE, PAIR_DELAYS, ACCOUNT_FREE, ACCOUNT_DELAYS, LOCK_AFTER,
-- LOCK_FOR, CLIENT_INTERVAL, CLIENT_TOLERANCE, FORGET_AFTER (milliseconds; the delay tables
-- hold the backoff after free + 1, free + 2, ... failures, the last one repeating).
-- KEYS: the (client, username) record, the username's record, the client's arrival time;
-- or the client's alone for an attempt without a username. ARGV[1]: now (Unix ms).
-- A failure record is "<count>:<last failure ms>:<locked until ms>".
local now = tonumber(ARGV[1])
local with_username = #KEYS == 3
local client_key = KEYS[#KEYS]
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

local function arrival()
  return tonumber(redis.call('GET', client_key) or '0') or 0
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

-- The client's arrival time, kept until it passes.
local function save_arrival(tat)
  if tat > now then
    redis.call('SET', client_key, string.format('%d', tat), 'PX', string.format('%d', tat - now))
  else
    redis.call('DEL', client_key)
  end
end

-- LoginLimits::decide. Returns {reason, wait ms}: reason 0 allows, 1 account locked,
-- 2 client and username, 3 username, 4 client. The longest wait wins; of equal waits, the
-- later rule (as Iterator::max_by_key).
local function decide()
  local reason, longest = 0, 0
  local function consider(code, until_ms)
    if until_ms > now and until_ms - now >= longest then
      reason, longest = code, until_ms - now
    end
  end
  if with_username then
    local pair_count, pair_last = load_or_zero(KEYS[1])
    local account_count, account_last, account_locked = load_or_zero(KEYS[2])
    consider(1, account_locked)
    consider(2, backoff_end(pair_last, PAIR_FREE, PAIR_DELAYS, pair_count))
    consider(3, backoff_end(account_last, ACCOUNT_FREE, ACCOUNT_DELAYS, account_count))
  end
  consider(4, math.max(arrival() - CLIENT_TOLERANCE, 0))
  return {reason, longest}
end

-- LoginLimits::refund_client.
local function refund_client()
  if redis.call('EXISTS', client_key) == 1 then
    save_arrival(math.max(arrival() - CLIENT_INTERVAL, 0))
  end
end
