-- Text formatting: money, thousands separators, aligned tables, templates.
local format = {}

--- 1234567 -> "1,234,567".
function format.thousands(n)
  local s = tostring(math.tointeger(n) or n)
  local sign, digits = s:match("^(-?)(%d+)$")
  digits = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return sign .. digits
end

--- Integer cents -> "12,345.67".
function format.money(cents)
  local sign = cents < 0 and "-" or ""
  cents = math.abs(cents)
  return ("%s%s.%02d"):format(sign, format.thousands(cents // 100), cents % 100)
end

--- Renders rows of cells under `columns` ({ title, align = "l"|"r" }), a rule under the
--- header and, if given, before `footer`.
function format.table(columns, rows, footer)
  local widths = {}
  for i, c in ipairs(columns) do widths[i] = #c[1] end
  local all = { table.unpack(rows) }
  if footer then all[#all + 1] = footer end
  for _, row in ipairs(all) do
    for i, cell in ipairs(row) do widths[i] = math.max(widths[i], #cell) end
  end
  local function line(cells)
    local out = {}
    for i, c in ipairs(columns) do
      local w = c.align == "r" and widths[i] or -widths[i]
      out[i] = ("%" .. w .. "s"):format(cells[i])
    end
    return (table.concat(out, "  "):gsub("%s+$", ""))
  end
  local rule = {}
  for i, w in ipairs(widths) do rule[i] = ("-"):rep(w) end
  local lines = { line((function()
    local t = {}
    for i, c in ipairs(columns) do t[i] = c[1] end
    return t
  end)()), line(rule) }
  for _, row in ipairs(rows) do lines[#lines + 1] = line(row) end
  if footer then
    lines[#lines + 1] = line(rule)
    lines[#lines + 1] = line(footer)
  end
  return table.concat(lines, "\n") .. "\n"
end

--- Fills a template read line by line from `path`: `${name}` takes `vars[name]`; lines
--- starting with `#` are comments.
function format.template(path, vars)
  local out = {}
  for line in io.lines(path) do
    if line:sub(1, 1) ~= "#" then
      out[#out + 1] = line:gsub("%${([%w_]+)}", function(name)
        local v = vars[name]
        if v == nil then error(("%s: no value for ${%s}"):format(path, name), 0) end
        return tostring(v)
      end)
    end
  end
  return table.concat(out, "\n") .. "\n"
end

return format
