-- A small wrapkit app: `wrapkit pack {{name}}` packs it into ./{{name}}.run, which runs it.
-- Modules next to this file load with require, data files open under the executable's own
-- path (wrapkit.path), and nothing is written to disk.
local wrapkit = require("wrapkit")
local greeting = require("greeting")

local who = arg[1] or "world"
print(greeting.hello(who))
print(("(%s %s)"):format(wrapkit.name, wrapkit.version))
