-- One request from a token bucket (a hash: 'left' requests, 'at' when counted), atomically so that
-- every API process shares it. KEYS[1]: the bucket. ARGV: now (s), rate (per s), burst.
-- Returns '0' when taken, else the seconds until a request is there (as a string: Lua numbers
-- become integers in replies). Knows no workflow rule.
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local stored = redis.call('HMGET', KEYS[1], 'left', 'at')
local left, at = tonumber(stored[1]) or burst, tonumber(stored[2]) or now
left = math.min(burst, left + math.max(0, now - at) * rate)
local wait = 0
if left >= 1 then left = left - 1 else wait = (1 - left) / rate end
redis.call('HSET', KEYS[1], 'left', tostring(left), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
