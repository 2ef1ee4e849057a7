-- Regenerates the bundled data sets, deterministically (a fixed linear congruential generator,
-- no math.random):
--
--     lua5.4 tools/gen-data.lua
--
-- run from examples/report/. Not packed (see wrapkit.toml).

local state = 20240601
local function rand(n) -- an integer in [1, n]
  state = (state * 1103515245 + 12345) % 2147483648
  return state // 65536 % n + 1
end

local regions = { "North", "South", "East", "West", "Central" }
local products = {
  { "Widget", 250 }, { "Gadget", 1299 }, { "Gizmo", 799 }, { "Doohickey", 450 },
  { "Sprocket", 175 }, { "Widget, large", 425 }, { 'The "Deluxe" Kit', 4999 },
}
local reps = { "Ada", "Brian", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana" }

local function money(cents) return ("%d.%02d"):format(cents // 100, cents % 100) end
local function field(s)
  if s:find('[,"\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

local out = assert(io.open("data/sales.csv", "w"))
out:write("date,region,rep,product,units,unit_price\n")
for i = 1, 420 do
  local month = (i - 1) * 12 // 420 + 1
  local day = rand(28)
  local p = products[rand(#products)]
  local price = p[2] + (rand(5) - 3) * 5 -- small discounts and surcharges
  out:write(("2024-%02d-%02d,%s,%s,%s,%d,%s\n"):format(month, day, regions[rand(#regions)],
    reps[rand(#reps)], field(p[1]), rand(40), money(price)))
end
out:close()

out = assert(io.open("data/returns.csv", "w"))
out:write("date,region,rep,product,units,unit_price\n")
for i = 1, 60 do
  local month = (i - 1) * 12 // 60 + 1
  local p = products[rand(#products)]
  out:write(("2024-%02d-%02d,%s,%s,%s,%d,%s\n"):format(month, rand(28), regions[rand(#regions)],
    reps[rand(#reps)], field(p[1]), rand(6), money(p[2])))
end
out:close()
