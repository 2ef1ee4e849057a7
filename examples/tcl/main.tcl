# cities: a small report over a bundled CSV file, with tcllib's csv package, a package of the
# app's own (lib/units) and a file sourced relative to this script.
#   tclsh main.tcl            every city, largest first
#   tclsh main.tcl FR DE      only these countries
# `wrapkit pack examples/tcl --tcl` packs it with this machine's tclsh, Tcl's library and tcllib.
package require Tcl 8.6
package require csv
package require msgcat

set here [file dirname [file normalize [info script]]]
source [file join $here lib format.tcl]
lappend auto_path [file join $here lib]
package require units 1.0

set f [open [file join $here data cities.csv]]
set header [csv::split [gets $f]]
set rows {}
while {[gets $f line] >= 0} {
    if {$line eq ""} continue
    lassign [csv::split $line] name country population area
    if {[llength $argv] && $country ni $argv} continue
    lappend rows [list $name $country $population $area]
}
close $f

puts [format::row City Country Population Density]
foreach r [lsort -integer -decreasing -index 2 $rows] {
    lassign $r name country population area
    puts [format::row $name $country [format::thousands $population] [units::density $population $area]]
}
puts "[llength $rows] cities; data of [clock format 1700000000 -gmt 1 -format {%d %B %Y}]; csv [package present csv], msgcat [package present msgcat]"
