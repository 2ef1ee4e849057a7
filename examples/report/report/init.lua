-- The report command: loads a data set, bundled in the executable or from a real file, and
-- prints a summary or a table grouped by one field.
local wrapkit = require("wrapkit")
local args = require("lib.args")
local csv = require("report.csv")
local stats = require("report.stats")
local format = require("report.format")

local report = {}

local OPTIONS = {
  { "by", value = "FIELD" },
  { "top", value = "N" },
  { "sort", value = "KEY" },
  { "data", value = "NAME" },
  { "file", value = "PATH" },
  { "list" },
  { "version", alias = "V" },
  { "help", alias = "h" },
}

-- How each `--by` field is taken from a record.
local FIELDS = {
  region = function(r) return r.region end,
  rep = function(r) return r.rep end,
  product = function(r) return r.product end,
  month = function(r) return r.date:sub(1, 7) end,
}

local SORTS = { revenue = true, units = true, name = true }

local Usage = {} -- the metatable of usage errors, which exit 2

local function usage(fmt, ...)
  error(setmetatable({ msg = fmt:format(...) }, Usage), 0)
end

local function field_names()
  local names = {}
  for k in pairs(FIELDS) do names[#names + 1] = k end
  table.sort(names)
  return table.concat(names, ", ")
end

--- Bundled data sets: the `.csv` files in the archive's data/ directory, without extension.
function report.datasets()
  local names = {}
  for _, file in ipairs(assert(wrapkit.list("data"))) do
    local name = file:match("^(.*)%.csv$")
    if name then names[#names + 1] = name end
  end
  return names
end

-- The records of the CSV file at `path`, with `units` and `cents` (revenue) as integers.
local function load_rows(path)
  local rows = csv.read(path)
  for _, r in ipairs(rows) do
    local whole, frac = r.unit_price:match("^(%d+)%.(%d%d)$")
    local units = r.units:match("^%d+$") and math.tointeger(tonumber(r.units))
    if whole == nil or not units then
      error(("%s: bad record dated %s: units %q, unit_price %q"):format(path, r.date, r.units, r.unit_price), 0)
    end
    r.units = units
    r.cents = units * (tonumber(whole) * 100 + tonumber(frac))
  end
  return rows
end

local function totals(rows)
  local units, cents = 0, 0
  for _, r in ipairs(rows) do
    units, cents = units + r.units, cents + r.cents
  end
  return units, cents
end

local function sorted_groups(rows, key, sort)
  local groups = stats.group(rows, key)
  for _, g in ipairs(groups) do g.units, g.cents = totals(g.rows) end
  table.sort(groups, function(a, b)
    if sort == "name" or a[sort] == b[sort] then return a.key < b.key end
    return a[sort] > b[sort]
  end)
  return groups
end

local function summary(name, rows, top)
  local units, cents = totals(rows)
  local orders, dates = {}, {}
  for i, r in ipairs(rows) do
    orders[i], dates[i] = r.cents, r.date
  end
  table.sort(dates)
  local lines = {}
  for i, g in ipairs(sorted_groups(rows, FIELDS.product, "cents")) do
    if i > top then break end
    lines[i] = ("  %d. %-18s %12s"):format(i, g.key, format.money(g.cents))
  end
  return format.template(wrapkit.path("templates/summary.txt"), {
    dataset = name,
    rows = format.thousands(#rows),
    first = dates[1] or "-",
    last = dates[#dates] or "-",
    units = format.thousands(units),
    revenue = format.money(cents),
    avg_order = format.money(math.floor(stats.mean(orders) + 0.5)),
    median_order = format.money(math.floor(stats.median(orders) + 0.5)),
    top = #lines,
    top_products = table.concat(lines, "\n"),
  })
end

local function grouped(field, rows, top, sort)
  local sortkey = ({ revenue = "cents", units = "units", name = "name" })[sort]
  local body = {}
  for i, g in ipairs(sorted_groups(rows, FIELDS[field], sortkey)) do
    if top and i > top then break end
    body[i] = {
      g.key,
      format.thousands(#g.rows),
      format.thousands(g.units),
      format.money(g.cents),
      ("%.2f"):format(g.cents / g.units / 100),
    }
  end
  local units, cents = totals(rows)
  local footer = {
    "total",
    format.thousands(#rows),
    format.thousands(units),
    format.money(cents),
    ("%.2f"):format(units > 0 and cents / units / 100 or 0),
  }
  return format.table({
    { field },
    { "rows", align = "r" },
    { "units", align = "r" },
    { "revenue", align = "r" },
    { "avg price", align = "r" },
  }, body, footer)
end

local function help()
  local f = assert(io.open(wrapkit.path("templates/help.txt")))
  local text = f:read("a")
  f:close()
  return (text:gsub("%${(%w+)}", { name = wrapkit.name, fields = field_names() }))
end

local function run(argv)
  local opts, rest = args.parse(argv, OPTIONS)
  if opts == nil then usage("%s", rest) end
  if #rest > 0 then usage("unexpected argument '%s'", rest[1]) end
  if opts.help then
    io.write(help())
    return 0
  end
  if opts.version then
    print(("%s %s"):format(wrapkit.name, wrapkit.version))
    return 0
  end
  if opts.list then
    for _, name in ipairs(report.datasets()) do
      local path = "data/" .. name .. ".csv"
      local rows = load_rows(wrapkit.path(path))
      print(("%-8s %4d rows %7d bytes"):format(name, #rows, wrapkit.stat(path).size))
    end
    return 0
  end

  local top
  if opts.top then
    top = math.tointeger(tonumber(opts.top))
    if top == nil or top < 1 or not opts.top:match("^%d+$") then
      usage("--top wants a positive whole number, not '%s'", opts.top)
    end
  end
  local sort = opts.sort or "revenue"
  if not SORTS[sort] then usage("--sort wants revenue, units or name, not '%s'", sort) end
  if opts.by and not FIELDS[opts.by] then
    usage("cannot group by '%s' (fields: %s)", opts.by, field_names())
  end
  if opts.data and opts.file then usage("--data and --file cannot be used together") end

  local name, path
  if opts.file then
    name, path = opts.file, opts.file -- a real file, relative to the current directory
    local f, err = io.open(path)
    if f == nil then error(err, 0) end
    f:close()
  else
    name = opts.data or "sales"
    path = "data/" .. name .. ".csv"
    if not wrapkit.exists(path) then
      usage("no data set '%s' (bundled: %s)", name, table.concat(report.datasets(), ", "))
    end
    path = wrapkit.path(path)
  end

  local rows = load_rows(path)
  if opts.by then
    io.write(grouped(opts.by, rows, top, sort))
  else
    io.write(summary(name, rows, top or 3))
  end
  return 0
end

--- Runs the command with `argv` (without the program name); returns the exit status. Usage
--- errors print a message and a hint and give 2; other errors (a bad data file) give 1.
function report.main(argv)
  local ok, status = pcall(run, argv)
  if ok then return status end
  if getmetatable(status) == Usage then
    io.stderr:write(("%s: %s\nTry '%s --help' for more information.\n"):format(wrapkit.name, status.msg, wrapkit.name))
    return 2
  end
  io.stderr:write(("%s: %s\n"):format(wrapkit.name, tostring(status)))
  return 1
end

return report
