-- A slot of a concurrency key for a holder, first come first served, atomically for every worker.
-- KEYS: 1 holders (zset: holder -> lease end), 2 line (zset: waiter -> when it first asked),
--       3 seen (zset: waiter -> when its place lapses).
-- ARGV: holder, limit, now (s), lease (s). Returns 1 when the holder has a slot, else 0.
-- Knows no workflow rule: a semaphore with a queue. Cleans at most 100 lapsed entries per call.
local holder, limit, now, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)
if #gone > 0 then
  redis.call('ZREM', KEYS[2], unpack(gone))
  redis.call('ZREM', KEYS[3], unpack(gone))
end
local expire_ms = math.ceil(lease * 1000) + 1000
if redis.call('ZSCORE', KEYS[1], holder) then
  redis.call('ZADD', KEYS[1], now + lease, holder)
  redis.call('PEXPIRE', KEYS[1], expire_ms)
  return 1
end
redis.call('ZADD', KEYS[2], 'NX', now, holder)
redis.call('ZADD', KEYS[3], now + lease, holder)
local free = limit - redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[2], holder)
for i = 2, 3 do redis.call('PEXPIRE', KEYS[i], expire_ms) end
if rank >= free then return 0 end
redis.call('ZREM', KEYS[2], holder)
redis.call('ZREM', KEYS[3], holder)
redis.call('ZADD', KEYS[1], now + lease, holder)
redis.call('PEXPIRE', KEYS[1], expire_ms)
return 1
