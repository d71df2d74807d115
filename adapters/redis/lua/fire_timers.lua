-- Move due retry timers onto the event stream, atomically (a crash loses or repeats none).
-- KEYS: 1 timers, 2 event stream. ARGV: 1 now, 2 max count.
-- Returns {how many moved, the earliest due time left or ""}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due, 2 do
  local member, at = due[i], due[i + 1]
  local run_id, node_id, attempt = string.match(member, '^(.-)\n(.-)\n(%d+)$')
  redis.call('XADD', KEYS[2], '*', 'k', 'retry', 'r', run_id, 'n', node_id, 'a', attempt, 't', at)
  redis.call('ZREM', KEYS[1], member)
end
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due / 2, next_due[2] or ''}
