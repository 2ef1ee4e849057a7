package ifneeded units 1.0 [list source [file join $dir units.tcl]]
