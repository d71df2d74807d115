-- Commit decided state changes, atomically (ARCHITECTURE.md, "Written once"). The engine decides
-- every transition in its domain code; this script only checks that what a decision was based on is
-- still what is stored, then writes. It knows no workflow rule.
--
-- KEYS: every key the commit touches (keys of one shard: they share its hash tag).
-- ARGV: groups (one per run), each: a check count, the checks, an op count, the ops.
--   check: kind, key, field, expected; kind 'eq': HGET key field == expected ('' = no such field),
--          kind 'has': HEXISTS key field (expected unused).
--   op:    name, key, argument count, arguments. HSET, HDEL, RPUSH, ZADD, ZREM, PUBLISH (the key is
--          the channel) and XADD take their usual arguments (XADD: field/value pairs, the id is '*'); XACK group, entry ids;
--          EXPIRE seconds; PERSIST (no arguments); HMOVE source field, destination key, destination field (moves a hash
--          field between keys); SET value; LTRIM start stop.
--   Keys are 1-based positions in KEYS.
-- A group is written only when all its checks hold (checked before anything is written: a script
-- never rolls back). Returns per group 0 when written, else the position of the failed check.

local CHUNK = 1000  -- unpack() is bounded by Lua's C stack: long argument lists go in slices

local function variadic(name, key, args, first, last, step)
  for from = first, last, step do
    redis.call(name, key, unpack(args, from, math.min(from + step - 1, last)))
  end
end

local function write(name, key, first, last)
  if name == 'XADD' then
    redis.call('XADD', key, '*', unpack(ARGV, first, last))
  elseif name == 'XACK' then
    for from = first + 1, last, CHUNK do
      redis.call('XACK', key, ARGV[first], unpack(ARGV, from, math.min(from + CHUNK - 1, last)))
    end
  elseif name == 'EXPIRE' then
    redis.call('EXPIRE', key, ARGV[first])
  elseif name == 'SET' then
    redis.call('SET', key, ARGV[first])
  elseif name == 'LTRIM' then
    redis.call('LTRIM', key, ARGV[first], ARGV[first + 1])
  elseif name == 'PERSIST' then
    redis.call('PERSIST', key)
  elseif name == 'HMOVE' then
    local value = redis.call('HGET', key, ARGV[first])
    redis.call('HSET', KEYS[tonumber(ARGV[first + 1])], ARGV[first + 2], value)
    redis.call('HDEL', key, ARGV[first])
  else
    variadic(name, key, ARGV, first, last, CHUNK)
  end
end

local results, at = {}, 1
while at <= #ARGV do
  local failed = 0
  local checks = tonumber(ARGV[at]); at = at + 1
  for check = 1, checks do
    local kind, key, field, expected = ARGV[at], KEYS[tonumber(ARGV[at + 1])], ARGV[at + 2], ARGV[at + 3]
    at = at + 4
    if failed == 0 then
      local holds
      if kind == 'has' then holds = redis.call('HEXISTS', key, field) == 1
      else holds = (redis.call('HGET', key, field) or '') == expected end
      if not holds then failed = check end
    end
  end
  local ops = tonumber(ARGV[at]); at = at + 1
  for _ = 1, ops do
    local name, key, count = ARGV[at], KEYS[tonumber(ARGV[at + 1])], tonumber(ARGV[at + 2])
    if failed == 0 then write(name, key, at + 3, at + 2 + count) end
    at = at + 3 + count
  end
  results[#results + 1] = failed
end
return results
