-- Records a revocation. KEYS[1]: the entry. ARGV: the "not before" instant (Unix seconds;
-- 0 for token and session entries), the instant the entry stops mattering (Unix ms).
-- The value is "<not before>:<until ms>"; a later call never moves either back, and the key
-- expires at the later "until" on the server's clock.
local not_before, until_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local old = redis.call('GET', KEYS[1])
if old then
  local nb, u = string.match(old, '^(%d+):(%d+)$')
  if nb then
    not_before = math.max(not_before, tonumber(nb))
    until_ms = math.max(until_ms, tonumber(u))
  end
end
redis.call('SET', KEYS[1], string.format('%d:%d', not_before, until_ms),
  'PXAT', string.format('%d', until_ms))
return 1
