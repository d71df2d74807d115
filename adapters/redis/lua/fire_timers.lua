-- Move due retry timers onto the event stream, atomically (a crash loses or repeats none).
-- KEYS: 1 timers, 2 event stream. ARGV: 1 now, 2 max count. Returns how many moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local run_id, node_id, attempt = string.match(member, '^(.-)\n(.-)\n(%d+)$')
  local at = redis.call('ZSCORE', KEYS[1], member)
  redis.call('XADD', KEYS[2], '*', 'k', 'retry', 'r', run_id, 'n', node_id, 'a', attempt, 't', at)
  redis.call('ZREM', KEYS[1], member)
end
return #due
