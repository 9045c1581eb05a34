-- Apply one customer event to its profile, at most once, atomically.
-- KEYS[1]  profile record                {prefix}:{customer}:p  (see load_record below)
-- KEYS[2]  recently seen event ids before they moved into the record's field 'ids' (13-byte
--          records: 8-byte event-id hash, 1-byte kind (p/s/m), 4-byte big-endian event time,
--          epoch s) {prefix}:{customer}:seen: read when the record has none, then deleted
-- ARGV[1]  offset field for this event's topic: "op", "os" or "om" (its 2nd letter is the kind)
-- ARGV[2]  the event's partition offset
-- ARGV[3]  8-byte hash of the event id
-- ARGV[4]  event time, epoch seconds
-- ARGV[5]  dedup window, seconds
-- KEYS[3]  journal of applied events whose round is not saved yet  {prefix}:{customer}:j
--          field: offset field .. offset; value: apply sequence number, ':', the profile after
--          the event, ':', the profile before it (FIELDS order, comma-separated, '' for nil)
-- ARGV[6], ARGV[7]  offset field and offset of the customer's event sent just before this one
--          ('' and 0 when none): when that one has not been processed, this one is refused
--          without a write ("ORDER ..."), so whatever Redis refuses part-way through a pipeline
--          (out of memory, read-only), a customer's applied events are always a prefix of the
--          order they were sent in, and a retry of the whole round finds them as it left them
-- ARGV[8]  retention, seconds ('0': off): when the event is at least that long after the
--          customer's newest event (fields xp, xs, xm), the profile's fields are cleared before
--          it applies (scorers/retention.py: the old data expired, the event starts afresh);
--          offsets, seen ids, the journal marks and the 'as' / 'ix' fields are kept (the round
--          replaces them)
-- ARGV[9..] op, field, value triples; op is add | max | min, or (first) order, time, amount
-- Returns {1, each profile field in FIELDS order as an integer (its default when absent: 0 for
-- counters, nil for times), the apply sequence number} when applied; {4, the same} for a
-- redelivery of an event applied after the customer's round was last saved (field 'jw' of the
-- profile: the sequence number the saved alert state includes), read from the journal, so the
-- walk the lost round did not save is done again; {0} for any other redelivery,
-- {2} for a duplicate event id within the window, {3} for an event older than the window
-- (relative to the newest event of its kind), which cannot be deduplicated and is not applied.
-- Events are released in event-time order, so an offset below the newest applied one is not
-- necessarily a redelivery: it is one when its id was seen, or when it is too old to tell.
local FIELDS = {__FIELDS__}
local DEFAULTS = {__DEFAULTS__}
local OPS = {__OPS__}  -- field code -> add | max | min | order

-- The profile record (KEYS[1]): one string, a version byte (1) and a MessagePack map of field
-- code -> value: numbers for the profile fields, the offsets, 'ja' and 'jw'; strings (as
-- written) for the rest (the alert state 'as', the query API's index 'ix', the recently seen
-- event ids 'ids'). An absent field
-- is its default. A profile stored before the record existed (a hash of the same fields, as
-- text) is read as it is and written back as a record: an old store keeps working.
local VERSION = '\1'
local NUMERIC = {op = true, os = true, om = true, ja = true, jw = true}
for _, field in ipairs(FIELDS) do NUMERIC[field] = true end

local function load_record(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'string' then
    local raw = redis.call('GET', key)
    if string.sub(raw, 1, 1) ~= VERSION then
      return redis.error_reply('RECORD ' .. key .. ' has an unknown layout version: upgrade')
    end
    return cmsgpack.unpack(string.sub(raw, 2))
  end
  local record = {}
  if kind == 'hash' then
    local flat = redis.call('HGETALL', key)
    for i = 1, #flat, 2 do
      local field, value = flat[i], flat[i + 1]
      if NUMERIC[field] then value = tonumber(value) end
      record[field] = value
    end
  end
  return record
end

local function store_record(key, record)
  redis.call('SET', key, VERSION .. cmsgpack.pack(record))
end

local function text(value)
  if type(value) == 'number' then return string.format('%d', value) end
  return value or ''
end

-- ARGV[1] 'read': every field of the record but 'ids' as HGETALL would give it (name, value;
--          numbers as integers).
-- ARGV[1] 'get', ARGV[2] a field: its value as HGET would give it.
-- ARGV[1] 'write', then field, value pairs: set them as HSET would (KEYS[1] only).
local mode = ARGV[1]
-- ARGV[1] 'merge', then code, value pairs of another customer's profile: the record's profile
-- becomes the one both customers' events give (scorers/merge.py does the same: counters add,
-- last times take the newest, first times the oldest, transactions and the first day's amount
-- from the two profiles' first and last purchase days); a pair 'ids', the other customer's
-- recently seen event ids, adds them to the record's, so its events sent again are refused.
if mode == 'merge' then
  local record = load_record(KEYS[1])
  if record['err'] then return record end
  local other = {}
  for a = 2, #ARGV, 2 do
    if ARGV[a] == 'ids' then
      record['ids'] = (record['ids'] or '') .. ARGV[a + 1]
    else
      other[ARGV[a]] = tonumber(ARGV[a + 1])
    end
  end
  local function days(r)
    local pd, n = tonumber(r['pd']) or 0, tonumber(r['n']) or 0
    if pd == 0 and n > 0 then return n, math.floor((tonumber(r['g']) or 0) / n) end
    return pd, tonumber(r['fa']) or 0
  end
  local days_a, first_a = days(record)
  local days_b, first_b = days(other)
  local pd, fa = days_a + days_b, first_a + first_b
  local fp_a, fp_b = tonumber(record['fp']), other['fp']
  if fp_a ~= nil and fp_b ~= nil then
    local ends = {[math.floor(fp_a / 86400)] = true, [math.floor(tonumber(record['lp']) / 86400)] = true}
    local counted = {}
    for _, t in ipairs({fp_b, other['lp']}) do
      local day = math.floor(t / 86400)
      if ends[day] and not counted[day] then pd, counted[day] = pd - 1, true end
    end
    local day_a, day_b = math.floor(fp_a / 86400), math.floor(fp_b / 86400)
    if day_a < day_b then fa = first_a elseif day_b < day_a then fa = first_b end
  end
  for code, op in pairs(OPS) do
    local x, y = tonumber(record[code]), other[code]
    if op == 'add' then
      if x ~= nil or y ~= nil then record[code] = (x or 0) + (y or 0) end
    elseif y ~= nil and (x == nil or (op == 'max' and y > x) or (op == 'min' and y < x)) then
      record[code] = y
    end
  end
  record['pd'], record['fa'] = pd, fa
  store_record(KEYS[1], record)
  return 0
end
if mode == 'read' or mode == 'get' or mode == 'write' then
  local record = load_record(KEYS[1])
  if record['err'] then return record end
  if mode == 'get' then
    if record[ARGV[2]] == nil then return false end
    return text(record[ARGV[2]])
  end
  if mode == 'read' then  -- all but the seen ids ('ids'), which only this script needs
    local flat = {}  -- numbers go back as integers: formatting them here costs more than all else
    for field, value in pairs(record) do
      if field ~= 'ids' then
        flat[#flat + 1] = field
        flat[#flat + 1] = value
      end
    end
    return flat
  end
  for a = 2, #ARGV, 2 do
    local value = ARGV[a + 1]
    if NUMERIC[ARGV[a]] then value = tonumber(value) end
    record[ARGV[a]] = value
  end
  store_record(KEYS[1], record)
  return 0
end

local offset = tonumber(ARGV[2])
local profile = load_record(KEYS[1])
if profile['err'] then return profile end
if ARGV[6] ~= '' and (tonumber(profile[ARGV[6]]) or -1) < tonumber(ARGV[7]) then
  return redis.error_reply('ORDER the event sent before this one was not applied')
end
local applied = tonumber(profile[ARGV[1]])
local behind = applied ~= nil and offset <= applied
local entry = ARGV[1] .. ARGV[2]

local function redelivered()
  local journal = redis.call('HGET', KEYS[3], entry)
  if journal then
    local sep = string.find(journal, ':', 1, true)
    if tonumber(string.sub(journal, 1, sep - 1)) > (tonumber(profile['jw']) or 0) then
      local result, i = {4}, 1
      local after = string.sub(journal, sep + 1, string.find(journal, ':', sep + 1, true) - 1)
      for value in string.gmatch(after .. ',', '([^,]*),') do
        result[i + 1] = tonumber(value) or DEFAULTS[i]
        i = i + 1
      end
      result[i + 1] = tonumber(string.sub(journal, 1, sep - 1))
      return result
    end
    redis.call('HDEL', KEYS[3], entry)
  end
  return {0}
end

local now = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local kind = string.sub(ARGV[1], 2, 2)
local seen = profile['ids']
local seen_key = seen == nil  -- the ids are still in the key of the layout before the record
if seen_key then seen = redis.call('GET', KEYS[2]) or '' end
local id = ARGV[3]
local pos = 1
while true do
  local i = string.find(seen, id, pos, true)
  if not i then break end
  if (i - 1) % 13 == 0 then
    if behind then return redelivered() end
    profile[ARGV[1]] = offset
    store_record(KEYS[1], profile)
    return {2}
  end
  pos = i + 1
end

-- Topics are consumed at different paces, so the window is kept per kind: an id is forgotten
-- once the newest event of the same kind is more than `window` seconds past it.
local newest = {[kind] = now}
for r = 1, #seen, 13 do
  local k = string.sub(seen, r + 8, r + 8)
  local t = struct.unpack('>I4', seen, r + 9)
  if newest[k] == nil or t > newest[k] then newest[k] = t end
end
if now < newest[kind] - window then
  -- Older than any id still remembered for this kind: it cannot be proven new. Applying it
  -- could count it twice, so it is refused (and dead-lettered by the caller).
  if behind then return redelivered() end
  profile[ARGV[1]] = offset
  store_record(KEYS[1], profile)
  return {3}
end
local kept = {}
for r = 1, #seen, 13 do
  local k = string.sub(seen, r + 8, r + 8)
  if struct.unpack('>I4', seen, r + 9) >= newest[k] - window then
    kept[#kept + 1] = string.sub(seen, r, r + 12)
  end
end
kept[#kept + 1] = id .. kind .. struct.pack('>I4', now)
profile['ids'] = table.concat(kept)

if behind then offset = applied end
local before = {}
for i, field in ipairs(FIELDS) do before[i] = text(profile[field]) end
local retention = tonumber(ARGV[8])
if retention > 0 then
  local newest = math.max(tonumber(profile['xp']) or -1, tonumber(profile['xs']) or -1,
    tonumber(profile['xm']) or -1)
  if newest >= 0 and now - newest >= retention then
    for _, field in ipairs(FIELDS) do profile[field] = nil end
  end
end
profile[ARGV[1]] = offset
local function set_field(field, new)
  profile[field] = new
end
for a = 9, #ARGV, 3 do
  local op, field, value = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local current = tonumber(profile[field])
  local new = nil
  if op == 'order' then
    -- An order at time `field` for `value`: its UTC day is a new transaction unless it is the
    -- first or the last purchase day before it (scorers.profile._order_changes does the same).
    -- Comes first in ARGV, so fp / lp are still the values before this event.
    local at, first, last = tonumber(field), tonumber(profile['fp']), tonumber(profile['lp'])
    if first == nil or last == nil then
      set_field('pd', 1)
      set_field('fa', value)
    else
      local days, amount = tonumber(profile['pd']) or 0, tonumber(profile['fa']) or 0
      if days == 0 then
        local orders = tonumber(profile['n']) or 0
        days, amount = orders, math.floor((tonumber(profile['g']) or 0) / math.max(1, orders))
      end
      local day, first_day, last_day = math.floor(at / 86400), math.floor(first / 86400),
        math.floor(last / 86400)
      if day < first_day then amount = value elseif day == first_day then amount = amount + value end
      if day ~= first_day and day ~= last_day then days = days + 1 end
      set_field('pd', days)
      set_field('fa', amount)
    end
  elseif op == 'add' then
    new = (current or 0) + value
  elseif current == nil or (op == 'max' and value > current) or (op == 'min' and value < current) then
    new = value
  end
  if new ~= nil then set_field(field, new) end
end
local seq = (tonumber(profile['ja']) or 0) + 1
profile['ja'] = seq
-- The record is the first write: under maxmemory Redis refuses it and the script stops with
-- nothing written (a write that came first, even a DEL, would let the rest through).
store_record(KEYS[1], profile)
if seen_key then redis.call('DEL', KEYS[2]) end
local result, packed = {1}, {}
for i, field in ipairs(FIELDS) do
  result[i + 1] = tonumber(profile[field]) or DEFAULTS[i]
  packed[i] = text(profile[field])
end
result[#FIELDS + 2] = seq
redis.call('HSET', KEYS[3], entry,
  seq .. ':' .. table.concat(packed, ',') .. ':' .. table.concat(before, ','))
return result
