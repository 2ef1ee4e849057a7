-- Number crunching for tests/bench/run.sh: reads hyperfine's JSON exports and prints
-- Markdown rows, medians and ratios. Plain Lua 5.4, no modules.
--
--   stats.lua rows PREFIX                one Markdown table row per command (pooled over rounds)
--   stats.lua median-ms PREFIX NAME      pooled median of NAME, in milliseconds
--   stats.lua ratio PREFIX NAME_A NAME_B "R LO HI": pooled median(A)/median(B), and the lowest
--                                        and highest per-round ratio of medians
--   stats.lua median X...                median of numbers
--   stats.lua le A B                     prints PASS if A <= B, else FAIL
--
-- PREFIX.r0.json, PREFIX.r1.json, ... are hyperfine exports, one per round; the same command
-- names appear in every round.

-- A small JSON decoder: enough for hyperfine's exports (objects, arrays, numbers, strings,
-- true/false/null).
local function decode(s)
  local pos = 1
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local function err(what) error(("JSON: %s at byte %d"):format(what, pos), 0) end
  local value
  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = s:sub(i, i)
      if c == "" then err("unterminated string") end
      if c == '"' then pos = i + 1; return table.concat(out) end
      if c == "\\" then
        local e = s:sub(i + 1, i + 1)
        local map = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
        if e == "u" then
          out[#out + 1] = utf8.char(tonumber(s:sub(i + 2, i + 5), 16))
          i = i + 6
        else
          out[#out + 1] = map[e] or e
          i = i + 2
        end
      else
        out[#out + 1] = c
        i = i + 1
      end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1; ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; return t end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then err("object key expected") end
        local k = str(); ws()
        if s:sub(pos, pos) ~= ":" then err("':' expected") end
        pos = pos + 1
        t[k] = value(); ws()
        local d = s:sub(pos, pos); pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then err("',' or '}' expected") end
      end
    elseif c == "[" then
      local t = {}
      pos = pos + 1; ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; return t end
      while true do
        t[#t + 1] = value(); ws()
        local d = s:sub(pos, pos); pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then err("',' or ']' expected") end
      end
    elseif c == '"' then
      return str()
    else
      for lit, v in pairs({ ["true"] = true, ["false"] = false, ["null"] = false }) do
        if s:sub(pos, pos + #lit - 1) == lit then pos = pos + #lit; return v end
      end
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not num or num == "" then err("unexpected character") end
      pos = pos + #num
      return tonumber(num)
    end
  end
  return value()
end

local function load_json(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return decode(s)
end

local function median(xs)
  local t = table.move(xs, 1, #xs, 1, {})
  table.sort(t)
  local n = #t
  if n == 0 then return 0 / 0 end
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

local function mean_sd(xs)
  local sum = 0
  for _, x in ipairs(xs) do sum = sum + x end
  local m = sum / #xs
  local v = 0
  for _, x in ipairs(xs) do v = v + (x - m) ^ 2 end
  return m, (#xs > 1) and math.sqrt(v / (#xs - 1)) or 0
end

-- { order = {names...}, pooled = {name -> {times}}, rounds = { {name -> median} ... } }
local function load_rounds(prefix)
  local files = {}
  while true do
    local path = ("%s.r%d.json"):format(prefix, #files)
    local f = io.open(path, "rb")
    if not f then break end
    f:close()
    files[#files + 1] = path
  end
  assert(#files > 0, "no hyperfine exports named " .. prefix .. ".r*.json")
  local order, pooled, rounds = {}, {}, {}
  for _, path in ipairs(files) do
    local round = {}
    for _, r in ipairs(load_json(path).results) do
      local name = r.command
      if not pooled[name] then pooled[name] = {}; order[#order + 1] = name end
      table.move(r.times, 1, #r.times, #pooled[name] + 1, pooled[name])
      round[name] = median(r.times)
    end
    rounds[#rounds + 1] = round
  end
  return { order = order, pooled = pooled, rounds = rounds }
end

local function fmt_ms(s)
  local ms = s * 1000
  if ms >= 100 then return ("%.0f"):format(ms) end
  if ms >= 10 then return ("%.1f"):format(ms) end
  return ("%.3f"):format(ms)
end

local cmd = arg[1]
local rest = table.move(arg, 2, #arg, 1, {})

if cmd == "rows" then
  local d = load_rounds(rest[1])
  for _, name in ipairs(d.order) do
    local t = d.pooled[name]
    local m, sd = mean_sd(t)
    table.sort(t)
    print(("| %s | %s | %s ± %s | %s | %s | %d |"):format(
      name, fmt_ms(median(t)), fmt_ms(m), fmt_ms(sd), fmt_ms(t[1]), fmt_ms(t[#t]), #t))
  end
elseif cmd == "median-ms" then
  local d, name = load_rounds(rest[1]), rest[2]
  assert(d.pooled[name], "no command named " .. name)
  print(("%.4f"):format(median(d.pooled[name]) * 1000))
elseif cmd == "ratio" then
  local d, a, b = load_rounds(rest[1]), rest[2], rest[3]
  assert(d.pooled[a] and d.pooled[b], "unknown command name")
  local lo, hi = math.huge, -math.huge
  for _, r in ipairs(d.rounds) do
    local x = r[a] / r[b]
    lo, hi = math.min(lo, x), math.max(hi, x)
  end
  print(("%.3f %.3f %.3f"):format(median(d.pooled[a]) / median(d.pooled[b]), lo, hi))
elseif cmd == "median" then
  local xs = {}
  for _, x in ipairs(rest) do xs[#xs + 1] = assert(tonumber(x), "not a number: " .. x) end
  local m = median(xs)
  print(m == math.floor(m) and ("%d"):format(m) or ("%.1f"):format(m))
elseif cmd == "le" then
  print(assert(tonumber(rest[1])) <= assert(tonumber(rest[2])) and "PASS" or "FAIL")
else
  io.stderr:write("usage: stats.lua rows|median-ms|ratio|median|le ...\n")
  os.exit(2)
end
