//! `wrapkit cache dir | ls | verify | gc | clear`, on caches filled by real exec-mode starts.

use std::fs;
use std::process::Command;

use crate::exec::{CacheDir, PROBE_TOML, probe_app};
use crate::support::{Run, wrapkit};

fn cache_cmd(cache: &CacheDir, args: &[&str]) -> Run {
    Run::of(
        wrapkit()
            .arg("cache")
            .args(args)
            .env("WRAPKIT_CACHE_DIR", cache.path()),
    )
}

#[test]
fn dir_follows_the_documented_order() {
    let run = Run::of(
        wrapkit()
            .args(["cache", "dir"])
            .env_remove("WRAPKIT_CACHE_DIR")
            .env("XDG_CACHE_HOME", "/x")
            .env("HOME", "/h"),
    );
    assert_eq!(run.ok(), "/x/wrapkit\n");
    let run = Run::of(
        wrapkit()
            .args(["cache", "dir"])
            .env_remove("WRAPKIT_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env("HOME", "/h"),
    );
    assert_eq!(run.ok(), "/h/.cache/wrapkit\n");
    let run = Run::of(wrapkit().args(["cache", "dir"]).env_clear());
    let err = run.fails_with(1);
    assert!(
        err.contains("HOME is not set") && err.contains("hint: set WRAPKIT_CACHE_DIR"),
        "{err}"
    );
}

#[test]
fn ls_shows_each_tree_with_its_app_and_executables() {
    let cache = CacheDir::new();
    assert!(cache_cmd(&cache, &["ls"]).stderr.contains("no cache at"));
    let packed = probe_app("x", PROBE_TOML).pack(&[]);
    cache.run(&packed, &["exit", "0"]).ok();
    let out = cache_cmd(&cache, &["ls"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("DIGEST"), "{out}");
    let digest = cache
        .tree()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(lines[1].starts_with(&digest[..12]), "{out}");
    for needle in [
        "complete",
        "today",
        "probe 1.0",
        packed.exe.to_str().unwrap(),
    ] {
        assert!(lines[1].contains(needle), "`{needle}` missing: {out}");
    }
}

#[test]
fn verify_finds_a_changed_file_that_starts_do_not_notice() {
    let cache = CacheDir::new();
    let packed = probe_app("0123456789\n", PROBE_TOML).pack(&[]);
    cache.run(&packed, &["exit", "0"]).ok();
    let out = cache_cmd(&cache, &["verify"]).ok();
    assert!(out.starts_with("ok "), "{out}");
    // Same size, different bytes: the warm check (sizes only) cannot see it; verify must.
    let data = cache.tree().join("data.txt");
    fs::write(&data, "0123456789X").unwrap();
    fs::write(&data, "9876543210\n").unwrap();
    let run = cache_cmd(&cache, &["verify"]);
    assert!(
        run.stdout.contains("damaged") && run.stdout.contains("data.txt"),
        "{run:?}"
    );
    let err = run.fails_with(1);
    assert!(err.contains("hint: `wrapkit cache clear"), "{err}");
    // Clearing it makes the next start materialise it again.
    let digest = cache.tree().file_name().unwrap().to_string_lossy()[..8].to_owned();
    cache_cmd(&cache, &["clear", &digest]).ok();
    assert_eq!(cache.listing(), Vec::<String>::new());
    cache.run(&packed, &["exit", "0"]).ok();
    assert_eq!(
        fs::read_to_string(cache.tree().join("data.txt")).unwrap(),
        "0123456789\n"
    );
    assert!(cache_cmd(&cache, &["verify"]).ok().starts_with("ok "));
}

#[test]
fn gc_removes_trees_of_repacked_or_deleted_executables_and_leftovers() {
    let cache = CacheDir::new();
    let toml = "exec = [\"bin/probe\", \"cat\", \"{root}/data.txt\"]\n";
    let v1 = probe_app("one\n", toml);
    let exe = v1.scratch().join("tool");
    assert_eq!(v1.pack_to(&exe, &[]).code, Some(0));
    let run = || Run::of(Command::new(&exe).env("WRAPKIT_CACHE_DIR", cache.path()));
    assert_eq!(run().ok(), "one\n");
    let old_tree = cache.tree();
    let v2 = probe_app("two\n", toml);
    assert_eq!(v2.pack_to(&exe, &[]).code, Some(0));
    assert_eq!(run().ok(), "two\n");
    // A third app whose executable is deleted, and the remains of a killed fill.
    let gone = probe_app("three\n", PROBE_TOML).pack(&[]);
    cache.run(&gone, &["exit", "0"]).ok();
    fs::remove_file(&gone.exe).unwrap();
    let stale = cache
        .bundles()
        .join(format!(".tmp-{}-999999", "a".repeat(64)));
    fs::create_dir_all(stale.join("sub")).unwrap();

    let ls = cache_cmd(&cache, &["ls"]).ok();
    assert!(
        ls.contains("(repacked)") && ls.contains("(missing)"),
        "{ls}"
    );
    let dry = cache_cmd(&cache, &["gc", "--dry-run"]);
    assert!(dry.stderr.contains("would remove 2 trees"), "{dry:?}");
    assert!(stale.exists());

    let gc = cache_cmd(&cache, &["gc"]);
    assert!(gc.stderr.contains("removed 2 trees"), "{gc:?}");
    let trees: Vec<String> = cache
        .listing()
        .into_iter()
        .filter(|n| n.len() == 64)
        .collect();
    assert_eq!(trees.len(), 1, "{:?}", cache.listing());
    assert_ne!(
        cache.bundles().join(&trees[0]),
        old_tree,
        "the live tree stays"
    );
    assert!(!stale.exists(), "leftovers are removed");
    assert_eq!(run().ok(), "two\n");
}

#[test]
fn gc_removes_trees_unused_for_longer_than_max_age() {
    let cache = CacheDir::new();
    let packed = probe_app("x", PROBE_TOML).pack(&[]);
    cache.run(&packed, &["exit", "0"]).ok();
    cache_cmd(&cache, &["gc", "--max-age", "1"]).ok();
    assert_eq!(cache.listing().len(), 3, "used today: kept");
    let marker = cache
        .listing()
        .into_iter()
        .find(|n| n.ends_with(".ok"))
        .unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400);
    fs::File::options()
        .write(true)
        .open(cache.bundles().join(marker))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let gc = cache_cmd(&cache, &["gc", "--max-age", "2"]);
    assert!(gc.stderr.contains("unused for more than 2 days"), "{gc:?}");
    assert_eq!(cache.listing(), Vec::<String>::new());
}

#[test]
fn clear_empties_the_cache_and_apps_still_start() {
    let cache = CacheDir::new();
    let a = probe_app("a", PROBE_TOML).pack(&[]);
    cache.run(&a, &["exit", "0"]).ok();
    let run = cache_cmd(&cache, &["clear"]);
    assert!(run.stderr.contains("removed 1 tree"), "{run:?}");
    assert_eq!(cache.listing(), Vec::<String>::new());
    assert_eq!(cache.run(&a, &["exit", "4"]).code, Some(4));
    let run = cache_cmd(&cache, &["clear", "zzzz"]);
    assert!(run.fails_with(1).contains("no cached tree"));
}
