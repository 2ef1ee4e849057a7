//! Guards on what gets packed: warnings for content usually packed by mistake (each with the
//! flag that silences it), an entry or program the filters left out, a non-Lua entry script,
//! a name that is not UTF-8 left out by `--exclude`.

use std::fs;
use std::os::unix::ffi::OsStrExt;

use crate::support::{App, Run, wrapkit};

fn pack(app: &App, flags: &[&str]) -> Run {
    Run::of(
        wrapkit()
            .arg("pack")
            .arg(app.path())
            .arg("-o")
            .arg(app.scratch().join("out"))
            .args(flags),
    )
}

fn warnings(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn content_usually_packed_by_mistake_is_warned_about_once_each() {
    let app = App::new()
        .file("main.lua", "print(1)")
        .file(".env", "SECRET=1")
        .file("vendor/lib/.git/HEAD", "ref: x")
        .file(".venv/pyvenv.cfg", "home = /usr/bin")
        .file("node_modules/.cache/a", "x")
        .file("node_modules/.cache/b", "x");
    // A 100 MB + 1 file, sparse so it costs nothing on disk.
    let big = fs::File::create(app.path().join("big.bin")).unwrap();
    big.set_len(100_000_001).unwrap();
    let run = pack(&app, &["--compression", "store"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        warnings(&run),
        [
            "warning: packing `.env`: an environment file, where secrets are often kept; leave it out with `--exclude`, or allow it with `--allow dotenv`",
            "warning: packing `.venv`: a virtual environment, tied to the build machine's Python and paths; leave it out with `--exclude`, or allow it with `--allow venv`",
            "warning: packing `big.bin`: 100000001 bytes; leave it out with `--exclude`, or allow it with `--allow large`",
            "warning: packing `node_modules/.cache`: a build tool's cache; leave it out with `--exclude`, or allow it with `--allow cache`",
            "warning: packing `vendor/lib/.git`: a nested git repository, history and all; leave it out with `--exclude`, or allow it with `--allow git`",
        ]
    );
    // Each kind is silenced by its flag, or by `allow` in wrapkit.toml.
    let run = pack(
        &app,
        &[
            "--compression",
            "store",
            "--allow",
            "dotenv",
            "--allow",
            "git",
            "--allow",
            "venv",
            "--allow",
            "cache",
        ],
    );
    assert_eq!(warnings(&run).len(), 1, "{}", run.stderr);
    let app = app.file(
        "wrapkit.toml",
        "allow = [\"large\", \"dotenv\", \"git\", \"venv\", \"cache\"]\n",
    );
    let run = pack(&app, &["--compression", "store"]);
    assert!(warnings(&run).is_empty(), "{}", run.stderr);
    // Excluded, no warning either.
    fs::remove_file(app.path().join("wrapkit.toml")).unwrap();
    let run = pack(
        &app,
        &[
            "--compression",
            "store",
            "--exclude",
            ".env",
            "--exclude",
            "**/.git",
            "--exclude",
            ".venv",
            "--exclude",
            "node_modules",
            "--exclude",
            "big.bin",
        ],
    );
    assert!(warnings(&run).is_empty(), "{}", run.stderr);
}

#[test]
fn an_entry_or_program_left_out_by_the_filters_is_reported_as_excluded() {
    let app = App::new()
        .file("main.lua", "print(1)")
        .file("lib/x.lua", "");
    let err = pack(&app, &["--exclude", "main.lua"]).fails_with(1);
    assert!(
        err.starts_with("error: the entry script `main.lua` is left out by the `include`/`exclude` patterns\nhint: change `include`/`exclude`"),
        "{err}"
    );
    let err = pack(&app, &["--include", "lib/**"]).fails_with(1);
    assert!(
        err.contains("the entry script `main.lua` is left out"),
        "{err}"
    );
    let app = App::new()
        .executable("bin/tool", "#!/bin/sh\necho hi\n")
        .file("wrapkit.toml", "exec = [\"bin/tool\"]\n");
    let err = pack(&app, &["--exclude", "bin"]).fails_with(1);
    assert!(
        err.starts_with("error: the program `bin/tool` is left out"),
        "{err}"
    );
}

#[test]
fn a_non_lua_entry_is_refused_with_the_flag_to_use() {
    let app = App::new()
        .file("main.py", "print('hi')\n")
        .file("tool", "#!/usr/bin/env python3\nprint('hi')\n")
        .file("ok", "#!/usr/bin/env lua\nprint('hi')\n");
    let err = pack(&app, &["--entry", "tool"]).fails_with(1);
    assert_eq!(
        err,
        "error: the entry script `tool` is a script for `/usr/bin/env python3`, not Lua\n\
         hint: pack it as a Python app: `--python --entry tool` bundles the interpreter too\n"
    );
    let app = App::new().file("tool.sh", "#!/bin/sh\necho hi\n");
    let err = pack(&app, &["--entry", "tool.sh"]).fails_with(1);
    assert!(
        err.contains("hint: bundle a shell from this machine to run it: `--program /bin/bash --arg '{root}/tool.sh'`"),
        "{err}"
    );
    let app = App::new().file("tool.js", "console.log(1)\n");
    let err = pack(&app, &["--entry", "tool.js"]).fails_with(1);
    assert!(
        err.ends_with("hint: pack it as a Node app: `--node --entry tool.js` bundles node too\n"),
        "{err}"
    );
    let app = App::new().file("ok", "#!/usr/bin/env lua\nprint('hi')\n");
    assert_eq!(pack(&app, &["--entry", "ok"]).code, Some(0));
}

#[test]
fn exclude_can_leave_out_a_name_that_is_not_utf8() {
    let app = App::new().file("main.lua", "print('packed')");
    let bad = app
        .path()
        .join(std::ffi::OsStr::from_bytes(b"latin1-caf\xe9.txt"));
    fs::write(&bad, "x").unwrap();
    // Packed as it is, the name is refused (the format stores UTF-8 names)...
    let err = pack(&app, &[]).fails_with(1);
    assert!(err.contains("the name is not valid UTF-8"), "{err}");
    // ...and `--exclude` can leave it out, even at the top of the app.
    let run = pack(&app, &["--exclude", "latin1-*"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let out = Run::of(&mut std::process::Command::new(app.scratch().join("out"))).ok();
    assert_eq!(out, "packed\n");
}

#[test]
fn respect_gitignore_leaves_out_what_git_would_ignore_and_nothing_else() {
    // The app sits inside a repository: the rules of the directory above apply too, as do
    // negations, nested `.gitignore` files and `.git/info/exclude`.
    let repo = App::new()
        .file(".gitignore", "secret.txt\n")
        .file(".git/info/exclude", "notes\n")
        .file("app/main.lua", "print(1)")
        .file("app/.gitignore", "*.log\n!keep.log\n")
        .file("app/keep.log", "kept")
        .file("app/x.log", "ignored")
        .file("app/secret.txt", "s")
        .file("app/notes", "n")
        .file("app/sub/.gitignore", "dist/\n")
        .file("app/sub/dist/f", "built")
        .file("app/dist/f", "built");
    let app_dir = repo.path().join("app");
    let list = |flags: &[&str]| {
        let run = Run::of(wrapkit().args(["pack", "--list"]).arg(&app_dir).args(flags));
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        run.stdout
            .lines()
            // `f  SIZE  NAME  <- SOURCE`: the files, by name.
            .filter_map(|l| {
                l.split_once("  <- ")?
                    .0
                    .rsplit("  ")
                    .next()
                    .map(str::to_owned)
            })
            .collect::<Vec<_>>()
    };
    // Off by default: ignored build outputs are usually what an app needs.
    let all = list(&[]);
    for name in ["x.log", "secret.txt", "notes", "sub/dist/f", "dist/f"] {
        assert!(all.iter().any(|n| n == name), "{name} missing from {all:?}");
    }
    let kept = list(&["--respect-gitignore"]);
    assert_eq!(
        kept,
        [
            ".gitignore",
            "dist/f",
            "keep.log",
            "main.lua",
            "sub/.gitignore"
        ],
        "{kept:?}"
    );
    // The config key does the same, and an entry it ignores is reported as left out.
    fs::write(app_dir.join("wrapkit.toml"), "respect-gitignore = true\n").unwrap();
    assert_eq!(list(&[]), kept);
    let run = Run::of(
        wrapkit()
            .arg("pack")
            .arg(&app_dir)
            .args(["--entry", "x.log", "-o"])
            .arg(repo.scratch().join("out")),
    );
    let err = run.fails_with(1);
    assert!(
        err.contains("the entry script `x.log` is left out"),
        "{err}"
    );
}
