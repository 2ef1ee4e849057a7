-- A module of the app: `require("greeting")` finds it inside the packed file.
local M = {}

function M.hello(who)
  local f = assert(io.open(require("wrapkit").path("data/greeting.txt")))
  local word = f:read("l")
  f:close()
  return word .. ", " .. who .. "!"
end

return M
