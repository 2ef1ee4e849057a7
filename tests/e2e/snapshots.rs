//! Multi-line outputs pinned exactly, as inline snapshots (insta), with what changes from run
//! to run filtered out: temp paths, digests, the stub's size and offset. A change to any of
//! these outputs shows up here as a diff to review (`cargo insta review`, or edit the snapshot).

use std::fs;

use crate::exec::{CacheDir, PROBE_TOML, probe_app};
use crate::support::{App, Packed, Run, wrapkit};

/// Filters for what varies between runs and machines.
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"/tmp/[A-Za-z0-9._-]+", "[TMP]"),
        (r"blake3:[0-9a-f]{64}", "blake3:[DIGEST]"),
        (r"\b[0-9a-f]{12}\b", "[DIGEST12]"),
        (r"at offset \d+", "at offset [N]"),
        (r"static, [\d.]+ MiB", "static, [SIZE]"),
        (r"\(([\d.]+) MiB\)", "([SIZE])"),
        (r"\(\d+ bytes\)", "([N] bytes)"),
        (r" +[\d.]+ (?:B|KiB|MiB)  today", " [SIZE]  today"),
    ]
}

macro_rules! pinned {
    ($value:expr, @$snapshot:literal) => {
        insta::with_settings!({ filters => filters(), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!($value, @$snapshot);
        })
    };
}

fn sample() -> Packed {
    App::new()
        .file("main.lua", "print('hi')\n")
        .file("lib/util.lua", "return 1\n")
        .symlink("alias.lua", "lib/util.lua")
        .file("wrapkit.toml", "name = \"sample\"\nversion = \"1.2.3\"\n")
        .pack(&[])
}

#[test]
fn info_and_ls_long() {
    let packed = sample();
    let info = Run::of(wrapkit().arg("info").arg(&packed.exe)).ok();
    pinned!(info, @r"
    file:        [TMP]/packed ([SIZE])
    stub:        ELF 64-bit x86_64, static, [SIZE]
    payload:     at offset [N], 1.3 KiB (4 entries, 2 files)
    compression: 21 B of files stored in 21 B (100.0 %)
    format:      version 2
    digest:      blake3:[DIGEST]
    app:         sample 1.2.3
    run:         lua main.lua
    packer:      wrapkit 0.1.0
    ");
    let ls = Run::of(wrapkit().args(["ls", "--long"]).arg(&packed.exe)).ok();
    pinned!(ls, @r"
    lrwxrwxrwx         12         12 stored  alias.lua -> lib/util.lua
    drwxr-xr-x          0          0 stored  lib/
    -rw-r--r--          9          9 stored  lib/util.lua
    -rw-r--r--         12         12 stored  main.lua
    ");
}

#[test]
fn pack_list_prints_the_plan_and_writes_nothing() {
    let app = App::new()
        .file("main.lua", "print('hi')\n")
        .file("lib/util.lua", "return 1\n")
        .symlink("alias.lua", "lib/util.lua")
        .dir("empty")
        .file("wrapkit.toml", "name = \"sample\"\nversion = \"1.2.3\"\n");
    let out = Run::of(wrapkit().args(["pack", "--list"]).arg(app.path())).ok();
    pinned!(out, @r"
    sample 1.2.3: lua main.lua
    l             alias.lua  -> lib/util.lua
    d             empty/
    d             lib/
    f        9 B  lib/util.lua  <- [TMP]/app/lib/util.lua
    f       12 B  main.lua  <- [TMP]/app/main.lua
    2 files (21 B, 0 B of it generated), 2 directories, 1 symlink
    ");
    let left: Vec<_> = fs::read_dir(app.scratch()).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "only the app directory: {left:?}");
}

#[test]
fn cache_ls() {
    let packed = probe_app("data\n", PROBE_TOML).pack(&[]);
    let cache = CacheDir::new();
    let run = |cmd: &mut std::process::Command| Run::of(cmd.env("WRAPKIT_CACHE_DIR", cache.path()));
    run(packed.cmd().args(["exit", "0"])).ok();
    let out = run(wrapkit().args(["cache", "ls"])).ok();
    // The size column depends on the compiled probe: filtered to `[SIZE]`.
    pinned!(out, @r"
    DIGEST        STATE             SIZE  LAST USED    APP                   EXECUTABLES
    [DIGEST12]  complete [SIZE]  today        probe 1.0             [TMP]/packed
    ");
}

#[test]
fn error_blocks() {
    let app = App::new().file("main.lua", "print(1)\n");
    // The CLI: error, hint.
    let err = app.pack_to(&app.path().join("inside"), &[]).fails_with(1);
    pinned!(err, @r"
    error: the output [TMP]/app/inside is inside the input directory [TMP]/app
    hint: write the executable outside the app directory, e.g. `-o ../app`
    ");
    // The CLI: error, cause.
    let packed = app.pack(&[]);
    let err = Run::of(
        wrapkit()
            .arg("extract")
            .arg(&packed.exe)
            .arg("/nonexistent/dir"),
    )
    .fails_with(1);
    pinned!(err, @r"
    error: cannot write /nonexistent/dir
      caused by: No such file or directory (os error 2)
    ");
    // The stub: the same block, naming the executable.
    let bytes = packed.bytes();
    let cut = packed.variant("cut", &bytes[..bytes.len() - 1]);
    let err = Run::of(&mut std::process::Command::new(&cut)).fails_with(120);
    pinned!(err, @r"
    error: [TMP]/cut: no wrapkit payload at the end of the file ([N] bytes): it is truncated, has bytes appended, or is damaged
    hint: the file was cut short or changed after packing; copy it again, or pack the app again
    ");
    // The stub in exec mode, with causes.
    let exec = probe_app("", PROBE_TOML).pack(&[]);
    let file_not_dir = app.scratch().join("file");
    fs::write(&file_not_dir, "").unwrap();
    let err = Run::of(
        exec.cmd()
            .env("WRAPKIT_CACHE_DIR", file_not_dir.join("cache")),
    )
    .fails_with(122);
    pinned!(err, @r"
    error: [TMP]/packed: cannot create the cache directory [TMP]/file/cache
      caused by: [TMP]/file is not a directory
    hint: set WRAPKIT_CACHE_DIR to a writable directory this user owns
    ");
}
