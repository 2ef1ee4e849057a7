# The app's own package: found through the auto_path entry main.tcl adds.
package provide units 1.0
namespace eval units {
    proc density {population area} { return "[expr {round(double($population) / $area)}]/km²" }
}
