-- Aggregates over lists of numbers and of records.
local stats = {}

function stats.sum(xs)
  local s = 0
  for _, x in ipairs(xs) do s = s + x end
  return s
end

function stats.mean(xs)
  if #xs == 0 then return 0 end
  return stats.sum(xs) / #xs
end

function stats.median(xs)
  if #xs == 0 then return 0 end
  local s = table.move(xs, 1, #xs, 1, {})
  table.sort(s)
  local mid = (#s + 1) // 2
  if #s % 2 == 1 then return s[mid] end
  return (s[mid] + s[mid + 1]) / 2
end

--- Groups `rows` by `key(row)`: a list of { key = k, rows = {...} } in order of first appearance.
function stats.group(rows, key)
  local groups, index = {}, {}
  for _, row in ipairs(rows) do
    local k = key(row)
    local g = index[k]
    if g == nil then
      g = { key = k, rows = {} }
      index[k] = g
      groups[#groups + 1] = g
    end
    g.rows[#g.rows + 1] = row
  end
  return groups
end

return stats
