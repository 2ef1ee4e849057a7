# A small wrapkit app run by this machine's Tcl, bundled with it: `wrapkit pack {{name}}` packs
# tclsh, libtcl, Tcl's library, the packages this script requires, the script and its data into
# ./{{name}}.run, which runs where no Tcl is installed. Files next to this script are real
# files at run time, found through [info script].
package require msgcat

set who [expr {[llength $argv] > 0 ? [lindex $argv 0] : "world"}]
set here [file dirname [file normalize [info script]]]
set f [open [file join $here data greeting.txt]]
set greeting [string trim [read $f]]
close $f
puts "$greeting, $who!"
puts "({{name}}, Tcl [info patchlevel])"
