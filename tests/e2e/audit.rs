//! `wrapkit audit`: a program built here, linked against two libraries of its own (one bundled
//! beside it, one not), with a `$ORIGIN`-relative and an absolute RUNPATH.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::{App, Run, wrapkit};

fn cc(args: &[&str], dir: &Path) {
    let out = Command::new("cc")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("a C compiler (cc) is needed for the audit tests");
    assert!(
        out.status.success(),
        "cc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An app holding `bin/prog` (needs libfoo, libbar and libc) and `lib/libfoo.so`.
fn app_with_a_dynamic_program() -> App {
    let build = tempfile::tempdir().unwrap();
    let b = build.path();
    fs::write(
        b.join("foo.c"),
        "#include <stdio.h>\nint foo(void) { return puts(\"\"); }\n",
    )
    .unwrap();
    fs::write(b.join("bar.c"), "int bar(void) { return 2; }\n").unwrap();
    fs::write(
        b.join("prog.c"),
        "#include <stdio.h>\nint foo(void); int bar(void);\nint main(void) { printf(\"%d\\n\", foo() + bar()); return 0; }\n",
    )
    .unwrap();
    cc(&["-shared", "-fPIC", "-o", "libfoo.so", "foo.c"], b);
    cc(&["-shared", "-fPIC", "-o", "libbar.so", "bar.c"], b);
    cc(
        &[
            "-o",
            "prog",
            "prog.c",
            "-L.",
            "-lfoo",
            "-lbar",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib:/opt/build-host/lib",
        ],
        b,
    );
    App::new()
        .file("main.lua", "print(1)")
        .file("bin/prog", fs::read(b.join("prog")).unwrap())
        .file("lib/libfoo.so", fs::read(b.join("libfoo.so")).unwrap())
}

#[test]
fn audit_says_where_each_need_is_met() {
    let packed = app_with_a_dynamic_program().pack(&[]);
    let run = Run::of(wrapkit().arg("audit").arg(&packed.exe));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let floor = run
        .stdout
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_owned();
    let expected = format!(
        "bin/prog: dynamically linked, glibc floor {floor}, loader /lib64/ld-linux-x86-64.so.2\n  \
         libfoo.so                bundled  lib/libfoo.so\n  \
         libbar.so                MISSING: neither bundled nor part of glibc\n  \
         libc.so.6                glibc\n  \
         search path /opt/build-host/lib: an absolute path on the build host (where it exists on the target, its libraries are loaded instead)\n\
         lib/libfoo.so: dynamically linked, glibc floor GLIBC_2.2.5\n  \
         libc.so.6                glibc\n\
         glibc floor: {floor} (the target needs at least this glibc)\n"
    );
    assert_eq!(run.stdout, expected);
    assert!(floor.starts_with("GLIBC_2."), "{floor}");
    assert_eq!(
        run.stderr,
        format!(
            "error: {}: 1 library need(s) are met neither in the archive nor by glibc\n\
             hint: the program runs only where the target happens to have them: bundle them (and point the program's RUNPATH at them with $ORIGIN), or link statically\n",
            packed.exe.display()
        )
    );

    let json: serde_json::Value =
        serde_json::from_str(&Run::of(wrapkit().args(["audit", "--json"]).arg(&packed.exe)).stdout)
            .unwrap();
    assert_eq!(json["missing"], 1);
    assert_eq!(json["files"][0]["name"], "bin/prog");
    assert_eq!(json["files"][0]["static"], false);
    assert_eq!(json["files"][0]["needs"][0]["met"], "bundled");
    assert_eq!(json["files"][0]["needs"][0]["path"], "lib/libfoo.so");
    assert_eq!(json["files"][0]["needs"][1]["met"], "missing");
    assert_eq!(
        json["files"][0]["absolute_search_paths"][0],
        "/opt/build-host/lib"
    );
}

#[test]
fn audit_of_static_programs_and_lua_apps_finds_nothing_missing() {
    let packed = crate::exec::probe_app("", crate::exec::PROBE_TOML).pack(&[]);
    let out = Run::of(wrapkit().arg("audit").arg(&packed.exe)).ok();
    assert_eq!(out, "bin/probe: static\nglibc floor: none\n");
    let lua = App::new().file("main.lua", "print(1)").pack(&[]);
    assert_eq!(
        Run::of(wrapkit().arg("audit").arg(&lua.exe)).ok(),
        "no ELF files\n"
    );
}

#[test]
fn pack_warns_when_the_exec_program_depends_on_the_host() {
    let app = app_with_a_dynamic_program().file("wrapkit.toml", "exec = [\"bin/prog\"]\n");
    fs::set_permissions(
        app.path().join("bin/prog"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = app.scratch().join("out");
    let run = Run::of(wrapkit().arg("pack").arg(app.path()).arg("-o").arg(&out));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: `bin/prog` is dynamically linked and needs libbar.so, which the app does not hold: it runs only where the target has them (`wrapkit audit` lists every need)"
        ]
    );
    // A script names an interpreter outside the tree.
    let script = App::new()
        .executable("run.sh", "#!/usr/bin/python3 -I\nprint(1)\n")
        .file("wrapkit.toml", "exec = [\"run.sh\"]\n");
    let run = Run::of(
        wrapkit()
            .arg("pack")
            .arg(script.path())
            .arg("-o")
            .arg(script.scratch().join("out")),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.starts_with("warning: `run.sh` is a script for `/usr/bin/python3 -I`, which comes from the target machine"),
        "{}",
        run.stderr
    );
    // `-q` silences warnings, as it silences everything but errors.
    let quiet = Run::of(
        wrapkit()
            .args(["pack", "-q"])
            .arg(script.path())
            .arg("-o")
            .arg(script.scratch().join("out")),
    );
    assert_eq!((quiet.code, quiet.stderr.as_str()), (Some(0), ""));
}
