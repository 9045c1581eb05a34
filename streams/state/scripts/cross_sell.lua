-- The cross-sell counters' update for one round (streams/state/cross_sell_counts.py).
-- KEYS: meta, items, dedup, then one partner row per item named in ARGV.
-- ARGV: half-life seconds (0: no fading), max partners, dedup keep, row key prefix, item count
-- m, m item names (row of item i is KEYS[3 + i]), then per order: id, time, first (0/1), number
-- of new items, their indexes, number of items had, their indexes.
local h, limit, keep, rowprefix = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local m = tonumber(ARGV[5])
local function fmt(x) return string.format('%.17g', x) end
local function load(key)
  local flat, t, size = redis.call('HGETALL', key), {}, 0
  for j = 1, #flat, 2 do t[flat[j]] = tonumber(flat[j + 1]); size = size + 1 end
  return t, size
end
local names, rows, sizes, dirty, index = {}, {}, {}, {}, {}
for i = 1, m do
  names[i] = ARGV[5 + i]
  index[names[i]] = i
  rows[i], sizes[i] = load(KEYS[3 + i])
end
local items = load(KEYS[2])
local meta = load(KEYS[1])
local n, ref = meta['n'] or 0, meta['ref']
local changed = false
local function rebase(k)
  local factor = 2 ^ (-k)
  ref = ref + k * h
  n = n * factor
  for a, v in pairs(items) do
    items[a] = v * factor
    if index[a] then
      for b, c in pairs(rows[index[a]]) do rows[index[a]][b] = c * factor end
      dirty[index[a]] = true
    else  -- a row this call did not load: scale it in place
      local row = rowprefix .. a
      local cells = redis.call('HGETALL', row)
      for c = 1, #cells, 2 do
        redis.call('HSET', row, cells[c], fmt(tonumber(cells[c + 1]) * factor))
      end
    end
  end
end
local function weight(at)
  if h == 0 then return 1 end
  if not ref then ref = math.floor(at) end
  local e = (at - ref) / h
  if e > 64 then
    rebase(math.floor(e))
    e = (at - ref) / h
  end
  return 2 ^ e
end
local function bump(a, b, w)
  local row, name = rows[a], names[b]
  local v = row[name]
  if v == nil then sizes[a] = sizes[a] + 1; v = 0 end
  row[name] = v + w
  dirty[a] = true
end
local function prune(a)
  if sizes[a] <= 2 * limit then return end
  local entries = {}
  for b, v in pairs(rows[a]) do entries[#entries + 1] = {b, v} end
  table.sort(entries, function(x, y)
    if x[2] ~= y[2] then return x[2] > y[2] end
    return x[1] < y[1]
  end)
  local kept = {}
  for j = 1, limit do kept[entries[j][1]] = entries[j][2] end
  rows[a], sizes[a] = kept, limit
end
local applied = 0
local p = 6 + m
while p <= #ARGV do
  local id, at, first = ARGV[p], tonumber(ARGV[p + 1]), ARGV[p + 2] == '1'
  local nnew = tonumber(ARGV[p + 3])
  local new = {}
  for j = 1, nnew do new[j] = tonumber(ARGV[p + 3 + j]) end
  p = p + 4 + nnew
  local nhad = tonumber(ARGV[p])
  local had = {}
  for j = 1, nhad do had[j] = tonumber(ARGV[p + j]) end
  p = p + 1 + nhad
  if nnew > 0 and not redis.call('ZSCORE', KEYS[3], id) then
    applied = applied + 1
    changed = true
    redis.call('ZADD', KEYS[3], redis.call('HINCRBY', KEYS[1], 'seq', 1), id)
    local w = weight(at)
    if first then n = n + w end
    local touched = {}
    for i = 1, nnew do
      local a = new[i]
      items[names[a]] = (items[names[a]] or 0) + w
      for j = 1, nhad do bump(a, had[j], w); bump(had[j], a, w) end
      for j = i + 1, nnew do bump(a, new[j], w); bump(new[j], a, w) end
      touched[a] = true
    end
    for j = 1, nhad do touched[had[j]] = true end
    for a, _ in pairs(touched) do prune(a) end
  end
end
if changed then
  local out = {'n', fmt(n)}
  if ref then out[3] = 'ref'; out[4] = fmt(ref) end
  redis.call('HSET', KEYS[1], unpack(out))
  local flat = {}
  for a, v in pairs(items) do flat[#flat + 1] = a; flat[#flat + 1] = fmt(v) end
  if #flat > 0 then redis.call('HSET', KEYS[2], unpack(flat)) end
  for i = 1, m do
    if dirty[i] then
      redis.call('DEL', KEYS[3 + i])
      local cells = {}
      for b, v in pairs(rows[i]) do cells[#cells + 1] = b; cells[#cells + 1] = fmt(v) end
      if #cells > 0 then redis.call('HSET', KEYS[3 + i], unpack(cells)) end
    end
  end
end
local size = redis.call('ZCARD', KEYS[3])
if size > keep then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, size - keep - 1) end
return applied
