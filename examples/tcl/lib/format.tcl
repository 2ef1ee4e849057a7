# Sourced by main.tcl: how a report line looks.
namespace eval format {
    proc row {args} { return [::format {%-18s %-8s %12s %10s} {*}$args] }
    proc thousands {n} {
        regsub -all {\d(?=(\d{3})+$)} $n {&,} n
        return $n
    }
}
