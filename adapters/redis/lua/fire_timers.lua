-- Move due timers onto the event stream, atomically (a crash loses or repeats none).
-- A member is the fields of the event to send, flat, as a JSON array (adapters/redis/codec).
-- KEYS: 1 timers, 2 event stream. ARGV: 1 now, 2 max count.
-- Returns {how many moved, the earliest due time left or ""}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', unpack(cjson.decode(member)))
  redis.call('ZREM', KEYS[1], member)
end
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, next_due[2] or ''}
