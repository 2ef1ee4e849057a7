//! Tcl apps (`--tcl`): the example (tcllib's csv, a package of its own, a sourced file, a data
//! file) runs with the host's Tcl hidden and prints what it prints unpacked; an app re-executes
//! `info nameofexecutable` and loads Tcl's modules, encodings and clock data alone in an empty
//! chroot, with and without `/proc`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::exec::CacheDir;
use crate::node::run_hidden;
use crate::program::{in_empty_root, run_in_root};
use crate::support::{App, Run, example, missing, require_root, wrapkit};

/// The host's Tcl: tclsh and libtcl (as files), its script library and package trees.
fn host_tcl() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let canonical = |p: &str| std::fs::canonicalize(p).ok();
    let files = ["/usr/bin/tclsh", "/usr/lib/x86_64-linux-gnu/libtcl8.6.so"]
        .iter()
        .filter_map(|p| canonical(p))
        .collect();
    let dirs = [
        "/usr/share/tcltk",
        "/usr/lib/tcltk",
        "/usr/share/tcl8.6",
        "/usr/lib/tcl8.6",
    ]
    .iter()
    .map(PathBuf::from)
    .filter(|p| p.is_dir())
    .collect();
    (files, dirs)
}

/// What the host's tclsh does with `script`.
fn host_tclsh(script: &str) -> Run {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), script).unwrap();
    Run::of(Command::new("tclsh").arg(file.path()))
}

#[test]
fn the_tcl_example_runs_with_the_hosts_tcl_hidden() {
    if !require_root("a mount namespace") {
        return;
    }
    if host_tclsh("package require csv").code != Some(0) {
        missing("tcllib is not installed (apt-get install tcllib; .ci/run does)");
        return;
    }
    let dir = example("tcl");
    let out = tempfile::tempdir().unwrap();
    let exe = out.path().join("cities");
    Run::of(
        wrapkit()
            .args(["pack", "-q"])
            .arg(&dir)
            .arg("--tcl")
            .arg("-o")
            .arg(&exe),
    )
    .ok();
    let (files, dirs) = host_tcl();
    let cache = CacheDir::new();
    for args in [&[][..], &["FR", "DE"], &["XX"]] {
        let unpacked = Run::of(
            Command::new("tclsh")
                .arg(dir.join("main.tcl"))
                .args(args)
                .env_clear()
                .env("PATH", "/usr/bin:/bin"),
        );
        let packed = run_hidden(&cache, &exe, args, &files, &dirs);
        assert_eq!(
            packed.stdout, unpacked.stdout,
            "{args:?}: {}",
            packed.stderr
        );
        assert_eq!(packed.stderr, unpacked.stderr, "{args:?}");
        assert_eq!(packed.code, unpacked.code, "{args:?}");
        assert!(packed.stdout.contains("csv 0."), "{}", packed.stdout);
    }
    let which = run_hidden(
        &cache,
        Path::new("/bin/sh"),
        &["-c", "echo 'puts 1' | tclsh"],
        &files,
        &dirs,
    );
    assert_ne!(which.code, Some(0), "{which:?}");
}

const MAIN: &str = r#"
if {[lindex $argv 0] eq "child"} {
    puts "child: [info nameofexecutable] [info patchlevel]"
    exit 0
}
set here [file dirname [info script]]
source [file join $here helper.tcl]
package require msgcat
# As in a tclkit starpack, the app's executable is the packed file.
set exe [info nameofexecutable]
puts "exe: [expr {$exe eq $env(WRAPKIT_EXE) ? {the packed file} : $exe}]"
set library [file normalize [info library]]
set layer [file dirname [file dirname $library]]
puts "library: [expr {[string match */layers-v1/*/lib/tcl8.6 $library] ? {in the layer} : $library}]"
set outside [lmap p [tcl::tm::path list] {
    expr {[string first $layer/ [file normalize $p]] == 0 ? [continue] : $p}
}]
set relocated [expr {[file join [info library] tcl8] in [tcl::tm::path list] && ![llength $outside]}]
puts "tm: [expr {$relocated ? {relocated} : [tcl::tm::path list]}]"
puts "msgcat [package present msgcat], [helper]"
# A binary extension (Debian's tcl-thread: a package tree with a pkgIndex.tcl and a .so).
set version [package require Thread]
puts "Thread $version: [thread::send [thread::create] {expr {6 * 7}}]"
puts "clock: [clock format 86400 -gmt 1 -format {%A %d %B %Y}]"
puts "cp1252: [binary encode hex [encoding convertto cp1252 "\u20ac"]]"
puts "data: [string trim [read [open [file join $here data.txt]]]]"
# 2>@1: without it exec wants a temp file in /tmp for stderr, and the root has no /tmp.
# Re-executing it runs the app again, as a starpack does.
set child [exec $exe child 2>@1]
puts [string map [list $exe EXE] $child]
"#;

const EXPECTED: &str = "exe: the packed file\n\
library: in the layer\n\
tm: relocated\n\
msgcat 1.6.1, sourced\n\
Thread THREAD: 42\n\
clock: Friday 02 January 1970\n\
cp1252: 80\n\
data: bundled data\n\
child: EXE 8.6.13\n";

#[test]
fn a_tcl_app_reexecutes_itself_and_loads_tcls_library_in_an_empty_chroot() {
    if !require_root("chroot") {
        return;
    }
    let app = App::new()
        .file("main.tcl", MAIN)
        .file("helper.tcl", "proc helper {} { return sourced }\n")
        .file("data.txt", "bundled data\n");
    let packed = app.pack(&["--tcl", "--libc", "bundle"]);
    let (run, root) = in_empty_root(&packed, &[], false, &[]);
    let patchlevel = host_tclsh("puts -nonewline [info patchlevel]").ok();
    let thread = host_tclsh("puts -nonewline [package require Thread]").ok();
    let expected = EXPECTED
        .replace("8.6.13", &patchlevel)
        .replace("THREAD", &thread);
    assert_eq!(run.ok(), expected, "no /proc");
    assert_eq!(
        run_in_root(root.path(), &[], true).ok(),
        expected,
        "with /proc"
    );
}

/// Where Tcl is installed, the app still gets the packed library and packages, never the
/// target's versions of them.
#[test]
fn a_tcl_app_sees_only_what_was_packed_where_tcl_is_installed() {
    let script = r#"
set cache [file normalize $env(WRAPKIT_CACHE_DIR)]
foreach p [list [info library] {*}$auto_path {*}[tcl::tm::path list]] {
    if {[string first $cache/ [file normalize $p]] != 0} { puts "outside: $p" }
}
puts "[llength $auto_path] auto_path entries"
"#;
    let app = App::new().file("main.tcl", script);
    let packed = app.pack(&["--tcl"]);
    let cache = CacheDir::new();
    let out = cache.run(&packed, &[]).ok();
    assert!(!out.contains("outside"), "{out}");
    assert!(out.ends_with("auto_path entries\n"), "{out}");
}

#[test]
fn a_tcl_app_without_main_tcl_is_refused_with_a_hint() {
    let app = App::new().file("app.tcl", "puts hi\n");
    let listing = |flags: &[&str]| {
        Run::of(
            wrapkit()
                .args(["pack", "--list"])
                .arg(app.path())
                .arg("--tcl")
                .args(flags),
        )
    };
    let err = listing(&[]).fails_with(1);
    assert!(err.contains("`main.tcl` is not a file"), "{err}");
    assert!(
        err.contains("hint: name the script with `--entry`"),
        "{err}"
    );
    let out = listing(&["--entry", "app.tcl"]).ok();
    assert!(
        out.lines()
            .next()
            .unwrap()
            .ends_with("exec .layers/tclsh8.6/bin/tclsh8.6 {root}/app.tcl"),
        "{out}"
    );
}
