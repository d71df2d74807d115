-- A consistent snapshot of a run, in one reply (so concurrent reads share one pipeline).
--
-- KEYS: 1 the run's meta hash, 2 its nodes hash, 3 (optional) its outputs hash
-- Returns one flat field/value array per key, as HGETALL gives them.
local replies = {}
for i = 1, #KEYS do replies[i] = redis.call('HGETALL', KEYS[i]) end
return replies
