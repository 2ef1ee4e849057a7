-- CSV reading (RFC 4180 quoting, one record per line): a header row names the fields.
local csv = {}

--- The fields of one line; or nil and a message when a quote is left open.
function csv.split(line)
  local fields, pos = {}, 1
  while true do
    if line:sub(pos, pos) == '"' then
      local buf, i = {}, pos + 1
      while true do
        local q = line:find('"', i, true)
        if q == nil then return nil, "unterminated quoted field" end
        buf[#buf + 1] = line:sub(i, q - 1)
        if line:sub(q + 1, q + 1) == '"' then
          buf[#buf + 1] = '"'
          i = q + 2
        else
          pos = q + 1
          break
        end
      end
      fields[#fields + 1] = table.concat(buf)
    else
      local comma = line:find(",", pos, true) or #line + 1
      fields[#fields + 1] = line:sub(pos, comma - 1)
      pos = comma
    end
    if pos > #line then return fields end
    if line:sub(pos, pos) ~= "," then return nil, "junk after a quoted field" end
    pos = pos + 1
    if pos > #line then
      fields[#fields + 1] = ""
      return fields
    end
  end
end

--- Reads `path` (any path io.lines accepts: a real file or one in the archive) into a list of
--- records keyed by the header's names. Raises an error naming the line on bad input.
function csv.read(path)
  local header, rows, n = nil, {}, 0
  for line in io.lines(path) do
    n = n + 1
    line = line:gsub("\r$", "")
    if line ~= "" then
      local fields, err = csv.split(line)
      if fields == nil then error(("%s:%d: %s"):format(path, n, err), 0) end
      if header == nil then
        header = fields
      else
        if #fields ~= #header then
          error(("%s:%d: %d fields, expected %d"):format(path, n, #fields, #header), 0)
        end
        local row = {}
        for i, name in ipairs(header) do row[name] = fields[i] end
        rows[#rows + 1] = row
      end
    end
  end
  return rows, header or {}
end

return csv
