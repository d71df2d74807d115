-- A lease: a key holding its holder's value until it expires (adapters/redis/leases.py).
-- KEYS: 1 the lease key. ARGV: 1 'acquire', 'renew' or 'release'; 2 the holder's value; 3 the lease
-- in milliseconds. Returns 1 when it took effect, 0 when the lease is taken (acquire) or is not the
-- holder's (renew, release).
local operation, value, ms = ARGV[1], ARGV[2], ARGV[3]
if operation == 'acquire' then
  return redis.call('SET', KEYS[1], value, 'NX', 'PX', ms) and 1 or 0
end
if redis.call('GET', KEYS[1]) ~= value then return 0 end
if operation == 'renew' then return redis.call('PEXPIRE', KEYS[1], ms) end
redis.call('DEL', KEYS[1])
return 1
