-- LimiterStore::succeeded: the pair and the username's run are cleared, the client's charge
-- given back.
if with_username then redis.call('DEL', KEYS[1], KEYS[2]) end
refund_client()
return 1
