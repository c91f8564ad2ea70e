-- Merges one request's changes into a session record, atomically (G2).
-- The record's JSON is never decoded to Lua values: cjson would turn 2^53-1 or 0.1 into
-- floats and print them back differently. Member texts are cut out and put back as they
-- are, so every value keeps the exact text JSON.stringify wrote.
--
-- KEYS[1]  the session key
-- ARGV[1]  format: '3' = {"data","maxAge","expires"} (think-session-redis), '2' = data only
-- ARGV[2]  max age, ms            ARGV[3]  now, ms        ARGV[4]  new expiry, ms
-- ARGV[5]  most bytes of data     ARGV[6]  'apply', or 'touch' (only a live record, data kept)
-- ARGV[7]  n, then n pairs of (key as a JSON string, value as JSON text), then keys to remove
-- Returns 1 when written, 0 when 'touch' found no live record; TOO_LARGE <bytes> as an error.

local function string_end(s, i)
  while true do
    local j = s:find('["\\]', i + 1)
    if not j then error('unterminated string') end
    if s:byte(j) == 34 then return j + 1 end
    i = j + 1
  end
end

local function value_end(s, i)
  local c = s:byte(i)
  if c == 34 then return string_end(s, i) end
  if c == 123 or c == 91 then
    local depth = 0
    repeat
      local j = s:find('[%[%]{}"]', i)
      if not j then error('unterminated value') end
      if s:byte(j) == 34 then
        i = string_end(s, j)
      else
        local d = s:byte(j)
        if d == 123 or d == 91 then depth = depth + 1 else depth = depth - 1 end
        i = j + 1
      end
    until depth == 0
    return i
  end
  return s:find('[,}%]%s]', i) or (#s + 1)
end

-- The top-level members of an object text as {key text, value text}, or nil. Keys and
-- values without escapes or nesting (most of them) take one pattern match each.
local function members(s)
  local list = {}
  local _, open = s:find('^%s*{%s*')
  if not open then return nil end
  local i = open + 1
  if s:byte(i) == 125 then return list end
  while true do
    local key, j = s:match('^("[^"\\]*")%s*:%s*()', i)
    if not key then
      if s:byte(i) ~= 34 then return nil end
      local key_end = string_end(s, i)
      key = s:sub(i, key_end - 1)
      j = s:match('^%s*:%s*()', key_end)
      if not j then return nil end
    end
    local value, k = s:match('^("[^"\\]*")()', j)
    if not value then value, k = s:match('^([%w%.%+%-]+)()', j) end
    if not value then
      k = value_end(s, j)
      value = s:sub(j, k - 1)
    end
    list[#list + 1] = { key, value }
    local sep, after = s:match('^%s*([,}])%s*()', k)
    if sep == '}' then return list end
    if sep ~= ',' then return nil end
    i = after
  end
end

local function parsed(s)
  local ok, list = pcall(members, s)
  if ok then return list end
  return nil
end

local key = KEYS[1]
local format, max_age, now, expires = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local max_bytes, mode, n = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])

-- The live data of the stored record, if any; unreadable data counts as none.
local data = nil
local stored = redis.call('GET', key)
if stored then
  if format == '3' then
    -- As think-session-redis and this script write it; any other layout is parsed.
    local body, stored_expires = stored:match('^{"data":(.*),"maxAge":%d+,"expires":(%d+)}$')
    local wrapper
    if body then
      wrapper = { { '"data"', body }, { '"expires"', stored_expires } }
    else
      wrapper = parsed(stored)
    end
    if wrapper then
      -- A record whose expiry cannot be read counts as expired, as the reader takes it.
      local live = false
      for _, m in ipairs(wrapper) do
        if m[1] == '"data"' then data = m[2] end
        if m[1] == '"expires"' then live = (tonumber(m[2]) or 0) > now end
      end
      if not live then data = nil end
    end
  elseif redis.call('PTTL', key) > 0 then
    data = stored -- ThinkJS 2's records expire by their TTL alone; one without is not read either
  end
end
if mode == 'touch' and not data then return 0 end

local list = (data and parsed(data)) or {}
local index = {}
for i, m in ipairs(list) do index[m[1]] = i end
local a = 8
for _ = 1, n do
  local k, v = ARGV[a], ARGV[a + 1]
  a = a + 2
  if index[k] then
    list[index[k]][2] = v
  else
    list[#list + 1] = { k, v }
    index[k] = #list
  end
end
local removed = {}
for r = a, #ARGV do removed[ARGV[r]] = true end

local parts = {}
for _, m in ipairs(list) do
  if not removed[m[1]] then parts[#parts + 1] = m[1] .. ':' .. m[2] end
end
local body = '{' .. table.concat(parts, ',') .. '}'
if mode ~= 'touch' and #body > max_bytes then return redis.error_reply('TOO_LARGE ' .. #body) end

if format == '3' then
  local record = '{"data":' .. body .. ',"maxAge":' .. max_age .. ',"expires":' .. expires .. '}'
  redis.call('SET', key, record, 'PX', max_age)
else
  redis.call('SET', key, body, 'PX', max_age)
end
return 1
