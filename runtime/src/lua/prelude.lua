-- The wrapkit prelude: mounts the archive into Lua's file functions, builds the `wrapkit`
-- module, then runs the app's entry script the way `lua script.lua args...` would.
--
-- Archive paths are absolute paths under `native.root` (the executable's own path); everything
-- else goes to the original functions untouched.

local native = ...
local args = table.pack(select(2, ...))
local root = native.root
local io_open, io_lines, io_input = io.open, io.lines, io.input
local lua_loadfile, lua_dofile = loadfile, dofile
local type, error, load, sfmt = type, error, load, string.format

local function archive_path(path)
  if type(path) ~= "string" then return nil end
  return native.archive_path(path)
end

-- A relative path that is missing from the working directory but is one of the app's own files
-- is most likely meant to be the packed file: say how to name it. Costs nothing unless the open
-- has already failed.
local function packed_hint(path, err, code)
  if code == 2 and type(path) == "string" and path:sub(1, 1) ~= "/" then
    local rel = native.normalise(path)
    if rel and rel ~= "" and native.kind(rel) ~= nil then
      return err .. sfmt(" (relative paths name the working directory; the app's own %s is wrapkit.path(%q))", rel, rel)
    end
  end
  return err
end

function io.open(path, mode)
  local rel = archive_path(path)
  if rel == nil then
    local f, err, code = io_open(path, mode)
    if f == nil then return nil, packed_hint(path, err, code), code end
    return f
  end
  mode = mode or "r"
  if type(mode) ~= "string" or not mode:match("^[rwa]%+?b*$") then
    error("bad argument #2 to 'open' (invalid mode)", 2)
  end
  if mode:sub(1, 1) ~= "r" or mode:find("+", 1, true) then
    return nil, path .. ": Read-only file system", 30
  end
  return native.open(rel, path)
end

-- The results of one step of an io.lines iterator: closes the file at its end, and re-raises a
-- failure at the position of the loop, as the stock iterator would (the wrapper that calls this
-- is gone: it tail-calls).
local function lines_step(f, ok, ...)
  if not ok then error((...), 2) end
  if (...) == nil then f:close() end
  return ...
end

-- Opens an archive file for io.lines or io.input, failing with their message at the position
-- of their caller.
local function open_checked(rel, filename)
  local f, err = native.open(rel, filename)
  if f == nil then error(sfmt("cannot open file '%s' (%s)", filename, err:sub(#filename + 3)), 3) end
  return f
end

function io.lines(filename, ...)
  local rel = archive_path(filename)
  if rel == nil then return io_lines(filename, ...) end
  local f = open_checked(rel, filename)
  local it = f:lines(...)
  return function() return lines_step(f, pcall(it)) end, nil, nil, f
end

function io.input(file)
  local rel = archive_path(file)
  if rel == nil then return io_input(file) end
  return io_input(open_checked(rel, file))
end

local function load_archive_chunk(rel, filename, ...)
  local src, err, errno = native.read(rel, filename)
  if src == nil then -- as luaL_loadfilex words it: a directory opens, then fails to read
    return nil, (errno == 21 and "cannot read " or "cannot open ") .. err
  end
  if src:byte(1) == 35 then src = (src:gsub("^#[^\n]*", "", 1)) end -- skip a '#!' line
  return load(src, "@" .. filename, ...)
end

function loadfile(filename, ...)
  local rel = archive_path(filename)
  if rel == nil then return lua_loadfile(filename, ...) end
  return load_archive_chunk(rel, filename, ...)
end

function dofile(filename)
  local rel = archive_path(filename)
  if rel == nil then return lua_dofile(filename) end
  local f, err = load_archive_chunk(rel, filename)
  if f == nil then error(err, 0) end
  return f()
end

local function readable(filename)
  local rel = archive_path(filename)
  if rel ~= nil then return native.kind(rel) == "file" end
  local f = io_open(filename, "r")
  if f then f:close() return true end
  return false
end

function package.searchpath(name, path, sep, rep)
  sep, rep = sep or ".", rep or "/"
  if sep ~= "" then
    name = name:gsub(sep:gsub("%p", "%%%0"), (rep:gsub("%%", "%%%%")))
  end
  local tried = {}
  for template in path:gmatch("[^;]+") do
    local filename = template:gsub("%?", (name:gsub("%%", "%%%%")))
    if readable(filename) then return filename end
    tried[#tried + 1] = "no file '" .. filename .. "'"
  end
  return nil, table.concat(tried, "\n\t")
end

package.searchers[2] = function(name)
  local filename, err = package.searchpath(name, package.path)
  if filename == nil then return err end
  local f, lerr = loadfile(filename)
  if f == nil then
    error(sfmt("error loading module '%s' from file '%s':\n\t%s", name, filename, lerr), 0)
  end
  return f, filename
end
package.path = root .. "/?.lua;" .. root .. "/?/init.lua"
package.cpath = ""

-- With no C path the C searchers have nothing to try: keep them quiet rather than have
-- "module not found" end in a confusing "no file ''".
for i = 3, 4 do
  local searcher = package.searchers[i]
  package.searchers[i] = function(name)
    if package.cpath == "" then return nil end
    return searcher(name)
  end
end

-- The public module. Its functions take archive paths: relative to the archive root, or
-- absolute under `wrapkit.root`.
local wrapkit = {
  root = root,
  exe = root,
  name = native.name,
  version = native.version,
}

local function module_path(path, fname)
  if type(path) ~= "string" then
    error(sfmt("bad argument #1 to '%s' (string expected, got %s)", fname, type(path)), 3)
  end
  local rel
  if path:sub(1, 1) == "/" then
    rel = native.archive_path(path)
  else
    rel = native.normalise(path)
  end
  if rel == nil then
    error(sfmt("bad argument #1 to '%s' ('%s' is outside the archive mounted at %s)", fname, path, root), 3)
  end
  return rel, path
end

--- True if `path` names a file or directory in the archive. Symlinks are followed, as by
--- stat(2): a dangling one does not exist.
function wrapkit.exists(path)
  return native.kind((module_path(path, "exists"))) ~= nil
end

--- The whole contents of an archive file, checked against its CRC; or nil, message, errno.
function wrapkit.read(path)
  return native.read(module_path(path, "read"))
end

--- The names in an archive directory (the root when `path` is omitted), sorted; or nil, message.
function wrapkit.list(path)
  return native.list(module_path(path or "", "list"))
end

--- { type = "file"|"directory", size = n, mode = n, compressed = bool } of what `path` names,
--- symlinks followed (as by stat(2)); or nil, message, errno.
function wrapkit.stat(path)
  return native.stat(module_path(path, "stat"))
end

--- The absolute path (under the mount point) of an archive path, for io.open and friends.
function wrapkit.path(path)
  local rel = module_path(path, "path")
  if rel == "" then return root end
  return root .. "/" .. rel
end

--- A real filesystem path for an archive entry (to hand to a subprocess or a library): the
--- archive is materialised once into the exec-mode cache; or nil, message, errno.
function wrapkit.extract(path)
  return native.extract(module_path(path, "extract"))
end

package.loaded.wrapkit = wrapkit

-- Run the entry script.
arg = { [0] = native.argv0 }
for i = 1, args.n do arg[i] = args[i] end

local function report(msg)
  io.stderr:write(native.progname, ": ", msg, "\n")
  io.stderr:flush()
  return 1
end

local main, err = loadfile(root .. "/" .. native.entry)
if main == nil then return report(err) end

local function handler(msg)
  if type(msg) == "number" then
    msg = tostring(msg) -- as lua.c does: numbers are messages too
  elseif type(msg) ~= "string" then
    local mt = getmetatable(msg)
    if mt and mt.__tostring then return tostring(msg) end
    msg = sfmt("(error object is a %s value)", type(msg))
  end
  -- The frames below the app's main chunk are the prelude's: leave them out.
  return (debug.traceback(msg, 2):gsub("\n\t%[C%]: in function 'xpcall'.*$", ""))
end

local ok, msg = xpcall(main, handler, table.unpack(args, 1, args.n))
if not ok then return report(msg) end
return 0
