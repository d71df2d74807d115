-- Store a new PENDING run and queue its RunStarted event, atomically, in one call.
--
-- KEYS: 1 the run's meta hash, 2 its nodes hash, 3 the shard's PENDING run index, 4 the shard's
--       event stream, 5 the definition's graph hash
-- ARGV: 1 run id, 2 created at, then three count-prefixed lists of field/value pairs: the meta hash,
--       the nodes hash, the RunStarted entry; then the graph's field/value pairs, sent only when a
--       first call answered 'graph missing' (the graph is immutable: concurrent writers agree).
-- Returns 'ok', or 'graph missing' having written nothing.

local function hset_chunked(key, args, first, last)
  -- unpack() is bounded by Lua's C stack: write large hashes in slices.
  local step = 1000
  for from = first, last, step do
    local to = math.min(from + step - 1, last)
    redis.call('HSET', key, unpack(args, from, to))
  end
end

local position = 3
local spans = {}
for list = 1, 3 do
  local count = tonumber(ARGV[position])
  spans[list] = {position + 1, position + count}
  position = position + count + 1
end

if redis.call('EXISTS', KEYS[5]) == 0 then
  if position > #ARGV then return 'graph missing' end
  hset_chunked(KEYS[5], ARGV, position, #ARGV)
end
hset_chunked(KEYS[1], ARGV, spans[1][1], spans[1][2])
hset_chunked(KEYS[2], ARGV, spans[2][1], spans[2][2])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('XADD', KEYS[4], '*', unpack(ARGV, spans[3][1], spans[3][2]))
return 'ok'
