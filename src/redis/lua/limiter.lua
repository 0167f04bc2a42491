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
  if not value then return 0, 0, 0 end
  local count, last, locked = string.match(value, '^(%d+):(%d+):(%d+)$')
  if not count then return 0, 0, 0 end
  return tonumber(count), tonumber(last), tonumber(locked)
end

local function delay(free, delays, count)
  if count <= free then return 0 end
  local i = count - free
  if i > #delays then i = #delays end
  return delays[i]
end

local function arrival()
  return tonumber(redis.call('GET', client_key) or '0') or 0
end

