-- Set KEYS[2] to ARGV[2] only while KEYS[1] still holds ARGV[1]; 1 if written, 0 if fenced off.
-- A writer's fencing token (the learner's epoch guards its checkpoint), or, with KEYS[1] ==
-- KEYS[2], the value the writer read (a compare-and-set: a contact re-sealed by the rotation).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0
