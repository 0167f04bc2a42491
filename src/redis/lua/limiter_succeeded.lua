-- LimiterStore::succeeded: the pair and the username's run are cleared, the client's failure
-- given back; the verification stays counted. A registration attempt is kept whatever it
-- answered.
if registration then return 1 end
if with_username then redis.call('DEL', KEYS[1], KEYS[2]) end
give_back(client_key, CLIENT_INTERVAL)
return 1
