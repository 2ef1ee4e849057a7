-- A small command-line parser: long options with values (`--top 5`, `--top=5`), flags
-- (`--help`), one-letter aliases (`-h`), and `--` to end the options.
--
--   local opts, rest = args.parse(argv, {
--     { "top", value = "N" }, { "help", alias = "h" },
--   })
--
-- Returns the options by name and the positional arguments; or nil and a message.
local args = {}

function args.parse(argv, spec)
  local by_name = {}
  for _, o in ipairs(spec) do
    by_name["--" .. o[1]] = o
    if o.alias then by_name["-" .. o.alias] = o end
  end
  local opts, rest = {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      table.move(argv, i + 1, #argv, #rest + 1, rest)
      break
    elseif a:sub(1, 1) == "-" and #a > 1 then
      local name, value = a:match("^(%-%-[^=]+)=(.*)$")
      name = name or a
      local o = by_name[name]
      if o == nil then return nil, ("unknown option '%s'"):format(name) end
      if o.value then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then return nil, ("option '%s' needs a value (%s)"):format(name, o.value) end
        end
        opts[o[1]] = value
      elseif value ~= nil then
        return nil, ("option '%s' takes no value"):format(name)
      else
        opts[o[1]] = true
      end
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  return opts, rest
end

return args
