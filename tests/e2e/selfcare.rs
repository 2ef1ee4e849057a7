//! `WRAPKIT_SELF=…`: a packed file that looks after itself on a machine without `wrapkit`.

use std::fs;

use crate::exec::{CacheDir, PROBE_TOML, probe_app};
use crate::support::{App, Run};

#[test]
fn info_verify_and_help_without_the_packer() {
    let packed = App::new()
        .file("main.lua", "print('the app ran')")
        .file("wrapkit.toml", "name = \"tool\"\nversion = \"2.0\"\n")
        .pack(&[]);
    let run = |cmd: &str, args: &[&str]| Run::of(packed.cmd().args(args).env("WRAPKIT_SELF", cmd));
    let info = run("info", &["--ignored-app-arg"]).ok();
    let lines: Vec<&str> = info.lines().collect();
    assert_eq!(lines[0], "app:     tool 2.0");
    assert_eq!(lines[1], "run:     lua main.lua");
    assert!(lines[4].starts_with("digest:  blake3:"), "{info}");
    assert!(!info.contains("the app ran"));
    let ok = run("verify", &[]).ok();
    assert!(ok.starts_with("ok: 1 entries (1 files, "), "{ok}");
    assert!(run("help", &[]).ok().contains("cache-clear"));
    let err = run("nope", &[]).fails_with(2);
    assert!(err.contains("unknown WRAPKIT_SELF command `nope`"), "{err}");
    // A damaged copy fails verify, naming the region.
    let mut bytes = packed.bytes();
    let at = crate::support::archive_range(&bytes).end - 400;
    bytes[at] ^= 0x40;
    let damaged = packed.variant("damaged", &bytes);
    let run = Run::of(std::process::Command::new(&damaged).env("WRAPKIT_SELF", "verify"));
    let err = run.fails_with(1);
    assert!(
        err.starts_with(&format!("error: {}: ", damaged.display())),
        "{err}"
    );
    // Empty means unset: the app runs.
    assert_eq!(
        Run::of(packed.cmd().env("WRAPKIT_SELF", "")).ok(),
        "the app ran\n"
    );
}

#[test]
fn extract_and_cache_clear_without_the_packer() {
    let packed = probe_app("data\n", PROBE_TOML).pack(&[]);
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("tree");
    let run = Run::of(packed.cmd().arg(&target).env("WRAPKIT_SELF", "extract"));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        fs::read_to_string(target.join("data.txt")).unwrap(),
        "data\n"
    );
    // Not into a directory that holds something.
    let again = Run::of(packed.cmd().arg(&target).env("WRAPKIT_SELF", "extract"));
    assert!(
        again
            .fails_with(1)
            .contains("must be an existing, empty directory")
    );

    let cache = CacheDir::new();
    cache.run(&packed, &["exit", "0"]).ok();
    assert!(cache.tree().is_dir());
    let run = Run::of(
        packed
            .cmd()
            .env("WRAPKIT_SELF", "cache-clear")
            .env("WRAPKIT_CACHE_DIR", cache.path()),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.starts_with("removed "), "{}", run.stderr);
    assert!(
        cache.listing().iter().all(|n| n.starts_with('.')),
        "{:?}",
        cache.listing()
    );
}

#[test]
fn a_privileged_run_ignores_wrapkit_self() {
    if !crate::support::require_root("installing a setuid-root file") {
        return;
    }
    let packed = App::new()
        .file("main.lua", "print('the app ran')")
        .pack(&[]);
    let dir = crate::support::shared_tempdir(false);
    let app = dir.path().join("app");
    fs::copy(&packed.exe, &app).unwrap();
    fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    let out = Run::of(crate::support::as_nobody(&app).env("WRAPKIT_SELF", "info")).ok();
    assert_eq!(out, "the app ran\n");
}
