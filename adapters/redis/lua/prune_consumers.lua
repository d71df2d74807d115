-- Delete the group's consumers that hold nothing and have been idle longer than ARGV[2] ms.
-- KEYS: 1 stream. ARGV: 1 group, 2 idle milliseconds. Returns how many were deleted.
-- Deleting a consumer discards its pending entries, hence the check and the delete in one step.
local deleted = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local fields = {}
  for i = 1, #consumer, 2 do fields[consumer[i]] = consumer[i + 1] end
  if tonumber(fields['pending']) == 0 and tonumber(fields['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
    deleted = deleted + 1
  end
end
return deleted
