-- report: summaries of a bundled sales data set. The work is done by the `report` package
-- (report/init.lua); this entry script only hands it the command line and exits with its status.
local report = require("report")
os.exit(report.main({ ... }))
