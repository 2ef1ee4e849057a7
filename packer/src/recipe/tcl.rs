//! Tcl apps: `wrapkit pack DIR --tcl [PATH]`. The build machine's `tclsh` (symlinks
//! resolved: `tclsh8.6`) with `libtcl` becomes a layer through [`program`](super::program);
//! beside its libraries the layer holds Tcl's script library and the package trees the app's
//! scripts `package require`:
//!
//! ```text
//! .layers/tclsh8.6/bin/tclsh8.6        PT_INTERP and DT_RPATH slots, as for any program
//! .layers/tclsh8.6/lib/libtcl8.6.so    …and libz (glibc in glibc/, see --libc)
//! .layers/tclsh8.6/lib/tcl8.6/         `info library`: init.tcl, encoding/, msgs/, tcl8/*.tm, …
//! .layers/tclsh8.6/lib/tcllib1.21/     a package tree the app needs, from the build machine
//! ```
//!
//! `TCL_LIBRARY` names the packed script library: tclsh would otherwise prefer its compiled-in
//! one (`/usr/share/tcltk/tcl8.6`) whenever the target has it, and with it the target's package
//! directories. `auto_path` then holds the library's parent directory, so the package trees
//! beside it are found, and (in the packed `init.tcl`) not the compiled-in package directories.
//! Debian's `tm.tcl` names its module directory by absolute path
//! (`/usr/share/tcltk/tcl8.6/tcl8`); the packed copy names it relative to `[info library]`.
//!
//! What the build machine's tclsh says is what is bundled: the recipe runs it once to learn its
//! `info library` and, after `package require` of each package the app's scripts name, which
//! package trees those packages (and the packages they required) were loaded from.

use std::path::{Path, PathBuf};

use wrapkit_runtime::format::EntryKind;
use wrapkit_runtime::format::layer::Libc;

use super::Launch;
use super::program::{self, LAYERS_DIR, Program};
use crate::error::PackError;
use crate::pack::Interpreter;
use crate::plan::{Plan, Planned, Source};

const FLAG: &str = "tcl";

/// Prints `library DIR`, then `root DIR` for each package tree outside the library that the
/// packages named in `argv` were loaded from (their `package ifneeded` scripts name files
/// below an `auto_path` directory's subdirectory that has a `pkgIndex.tcl`).
const QUERY: &str = r#"
set lib [file normalize [info library]]
puts [list library $lib]
foreach p $argv { catch {package require $p} }
set roots {}
foreach p [lsort [package names]] {
    set v [package provide $p]
    if {$v eq ""} continue
    set script [package ifneeded $p $v]
    # The deepest auto_path directory the script names a file below (`/usr/lib` and
    # `/usr/lib/tcltk/x86_64-linux-gnu` both hold Debian's binary packages).
    set best ""
    foreach dir $auto_path {
        set dir [file normalize $dir]
        set i [string first "$dir/" $script]
        if {$i < 0 || [string length $dir] <= [string length $best]} continue
        set rest [string range $script [expr {$i + [string length $dir] + 1}] end]
        set top [lindex [split $rest "/ \t\n\}\]\";"] 0]
        set root [file join $dir $top]
        if {[file isfile [file join $root pkgIndex.tcl]]} {
            set best $dir
            set found $root
        }
    }
    if {$best eq ""} continue
    if {$found eq $lib || [string first "$lib/" $found] == 0} continue
    if {$found ni $roots} { lappend roots $found }
}
foreach r $roots { puts [list root $r] }
"#;

/// Adds the Tcl layer; returns how it starts: the layer's tclsh with the script, and
/// `TCL_LIBRARY`.
pub fn add(
    plan: &mut Plan,
    app: &Path,
    tcl: &Interpreter,
    libraries: &[PathBuf],
    libc: Libc,
) -> Result<Launch, PackError> {
    let mut binary = super::host_binary(tcl.binary.as_deref(), "tclsh", FLAG)?;
    if !super::is_elf(&binary) {
        // A wrapper script: the tclsh it runs knows its own path.
        let real = super::ask(
            &binary,
            &["/dev/stdin"],
            "puts -nonewline [info nameofexecutable]",
            FLAG,
        )?;
        binary = std::fs::canonicalize(&real).map_err(|source| PackError::Read {
            path: real.into(),
            source,
        })?;
    }
    let entry = tcl.entry.clone().unwrap_or_else(|| "main.tcl".into());
    let entry = entry.trim_start_matches("./").to_owned();
    if !plan
        .resolve(&entry)
        .is_some_and(|e| e.kind == EntryKind::File)
    {
        return Err(PackError::MissingEntry {
            entry,
            dir: app.to_path_buf(),
        });
    }
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| PackError::NonUtf8Name {
            path: binary.clone(),
        })?
        .to_owned();

    let required = required_packages(plan)?;
    let mut args = vec!["/dev/stdin"];
    args.extend(required.iter().map(String::as_str));
    let answer = super::ask(&binary, &args, QUERY, FLAG)?;
    let mut library = None;
    let mut roots = Vec::new();
    for line in answer.lines() {
        // `list` quotes a path with spaces in braces; the paths here are the build machine's.
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let value = value.trim_start_matches('{').trim_end_matches('}');
        match key {
            "library" => library = Some(PathBuf::from(value)),
            "root" => roots.push(PathBuf::from(value)),
            _ => {}
        }
    }
    let library = library.ok_or_else(|| PackError::BadInterpreter {
        path: binary.clone(),
        flag: FLAG,
        reason: "it did not say where its script library is".into(),
    })?;
    if !library.join("init.tcl").is_file() {
        return Err(PackError::BadInterpreter {
            path: binary.clone(),
            flag: FLAG,
            reason: format!("its script library {} has no init.tcl", library.display()),
        });
    }

    // Before the program: the layer's digest covers everything below its prefix.
    let lib = format!("{LAYERS_DIR}/{name}/lib");
    let library_dir = format!("{lib}/{}", file_name(&library));
    add_tree(plan, &library, &library_dir, true)?;
    for root in &roots {
        add_tree(plan, root, &format!("{lib}/{}", file_name(root)), false)?;
    }
    let bin = program::add(plan, &Program::plain(&binary, &name, libraries, libc))?;
    Ok(Launch {
        argv: vec![bin, format!("{{root}}/{entry}")],
        env: vec![("TCL_LIBRARY".into(), format!("{{root}}/{library_dir}"))],
        // `info nameofexecutable` is the packed file, as in a tclkit starpack (tclsh takes it
        // from argv[0]); tclsh finds its library through TCL_LIBRARY, not through its path.
        argv0: Some("{exe}".into()),
    })
}

/// The names in `package require NAME` (with or without `-exact`) in the app's `.tcl` and
/// `.tm` files: a static reading, so a name computed at run time is not seen.
fn required_packages(plan: &Plan) -> Result<Vec<String>, PackError> {
    let mut names = Vec::new();
    for e in plan.entries() {
        let (EntryKind::File, Source::Disk(path)) = (e.kind, &e.source) else {
            continue;
        };
        if e.name.starts_with(LAYERS_DIR) || !(e.name.ends_with(".tcl") || e.name.ends_with(".tm"))
        {
            continue;
        }
        let text = std::fs::read(path).map_err(|source| PackError::Read {
            path: path.clone(),
            source,
        })?;
        required_in(&String::from_utf8_lossy(&text), &mut names);
    }
    names.sort();
    Ok(names)
}

/// Adds the names `text` requires (`package require ?-exact? NAME`) to `names`, once each.
fn required_in(text: &str, names: &mut Vec<String>) {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || "[]{};".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    for (i, pair) in words.windows(2).enumerate() {
        if pair != ["package", "require"] {
            continue;
        }
        let name = match words.get(i + 2) {
            Some(&"-exact") => words.get(i + 3),
            other => other,
        };
        let Some(name) = name else { continue };
        let name = name.trim_matches('"');
        let plain = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_:.-".contains(c));
        if plain && !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
}

/// What the library scripts get where they name `[info nameofexecutable]`: the layer's tclsh
/// as named from the library, not the packed file that `info nameofexecutable` is. init.tcl
/// adds `<exe>/../../lib` to `auto_path` and tm.tcl the same as a module root: from the packed
/// file's directory, they would load packages from beside it (`/tmp/lib` for `/tmp/app`).
const LAYER_TCLSH: &str =
    "[file join [file dirname [file dirname [file normalize [info library]]]] bin tclsh]";

/// Debian's `tm.tcl` names the module directory inside the library, and the module roots, by
/// absolute build-machine paths; the copy names the first relative to `[info library]` and
/// the roots as the library's parent (upstream's default). Its module roots beside the
/// executable are the layer's ([`LAYER_TCLSH`]).
fn relocate_tm(bytes: &[u8], library: &Path) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes).replace("[info nameofexecutable]", LAYER_TCLSH);
    let lib = library.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let newline = if line.ends_with('\n') { "\n" } else { "" };
        if let Some(rest) = trimmed
            .strip_prefix("variable paths {")
            .and_then(|r| r.trim_end().strip_suffix('}'))
            && let Some(rel) = rest.strip_prefix(&*lib)
        {
            let rel = rel.trim_start_matches('/');
            out +=
                &format!("{indent}variable paths [list [file join [info library] {rel}]]{newline}");
        } else if trimmed.contains("::tcl::tm::roots {/") {
            out += &format!(
                "{indent}if {{![interp issafe]}} {{ ::tcl::tm::roots [list [file dirname [info library]]] }}{newline}"
            );
        } else {
            out += line;
        }
    }
    out.into_bytes()
}

/// `init.tcl` appends the compiled-in package directories (`tcl_pkgPath`: `/usr/share/tcltk`,
/// `/usr/lib`, …) to `auto_path`; the copy does not, so the packages the app gets are the ones
/// packed, not whatever version the target happens to have installed there.
///
/// It also adds the library's parent directory by the name `TCL_LIBRARY` gives (through the
/// bundle's `.layers/` link) and again by the executable's real path: two names for one
/// directory, whose every `pkgIndex.tcl` (tcllib has 150) would be read twice at each start.
/// The copy names it by its real path, once. Its `lib` beside the executable is the layer's
/// ([`LAYER_TCLSH`]).
fn hermetic_init(bytes: &[u8], _library: &Path) -> Vec<u8> {
    String::from_utf8_lossy(bytes)
        .replace("[info nameofexecutable]", LAYER_TCLSH)
        .replace(
            "foreach Dir [list $::tcl_library [file dirname $::tcl_library]] {",
            "foreach Dir [list $::tcl_library [file dirname [file normalize $::tcl_library]]] {",
        )
        .replace(
            "if {[info exists ::tcl_pkgPath]} {",
            "if {0 && [info exists ::tcl_pkgPath]} { # wrapkit: only packed packages",
        )
        .into_bytes()
}

/// Adds every file below `dir` (symlinks followed) at `prefix/<relative path>`; with
/// `relocate` (the script library), its `tm.tcl` and `init.tcl` are rewritten
/// ([`relocate_tm`], [`hermetic_init`]).
fn add_tree(plan: &mut Plan, dir: &Path, prefix: &str, relocate: bool) -> Result<(), PackError> {
    let read_err = |path: &Path, source| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    for e in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        let e = e.map_err(|err| {
            let path = err.path().unwrap_or(dir).to_path_buf();
            read_err(&path, err.into())
        })?;
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(dir)
            .expect("below the walk's root")
            .to_str()
            .ok_or_else(|| PackError::NonUtf8Name {
                path: e.path().to_path_buf(),
            })?;
        let meta = e.metadata().map_err(|err| read_err(e.path(), err.into()))?;
        let relocated = match rel {
            "tm.tcl" => Some(relocate_tm as fn(&[u8], &Path) -> Vec<u8>),
            "init.tcl" => Some(hermetic_init as fn(&[u8], &Path) -> Vec<u8>),
            _ => None,
        };
        let (size, source) = if let Some(relocate_file) = relocated.filter(|_| relocate) {
            let bytes = std::fs::read(e.path()).map_err(|err| read_err(e.path(), err))?;
            let bytes = relocate_file(&bytes, dir);
            (bytes.len() as u64, Source::Generated(bytes))
        } else {
            (meta.len(), Source::Disk(e.path().to_path_buf()))
        };
        plan.add(Planned {
            name: format!("{prefix}/{rel}"),
            kind: EntryKind::File,
            mode: std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            size,
            target: None,
            source,
        })?;
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_requires_are_read_from_scripts() {
        let mut names = Vec::new();
        required_in(
            "package require Tcl 8.6\nset v [package require -exact csv 0.8.1]\n\
             if {1} {package require struct::list}; package require $computed\npackage require msgcat",
            &mut names,
        );
        assert_eq!(names, ["Tcl", "csv", "struct::list", "msgcat"]);
    }

    #[test]
    fn debians_tm_tcl_is_relocated_to_the_packed_library() {
        let debian =
            b"namespace eval ::tcl::tm {\n    variable paths {/usr/share/tcltk/tcl8.6/tcl8}\n}\n\
            if {![interp issafe]} { ::tcl::tm::roots {/usr/lib/tcltk /usr/share/tcltk} }\n";
        let out = relocate_tm(debian, Path::new("/usr/share/tcltk/tcl8.6"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "namespace eval ::tcl::tm {\n    variable paths [list [file join [info library] tcl8]]\n}\n\
             if {![interp issafe]} { ::tcl::tm::roots [list [file dirname [info library]]] }\n"
        );
        // Upstream's, which names nothing absolute, is left as it is.
        let upstream = b"    variable paths {}\n";
        assert_eq!(relocate_tm(upstream, Path::new("/x")), upstream);
    }
}
