-- The smallest packed app: greets whoever is named on the command line.
local who = arg[1] or "world"
print(("Hello, %s! (from %s, Lua %s)"):format(who, require("wrapkit").name, _VERSION:match("%d+%.%d+")))
