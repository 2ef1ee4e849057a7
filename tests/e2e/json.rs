//! `--json` output: each schema exactly as docs/cli.md ("JSON output") documents it, its field
//! names and types, and values that agree with what `info --json` and the file itself say.
//! Errors stay an error block on stderr, stdout then empty.

use std::collections::BTreeSet;
use std::fs;

use serde_json::Value;

use crate::exec::{CacheDir, PROBE_TOML, probe_app};
use crate::support::{App, Run, wrapkit};

fn parse(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

/// Asserts that `object` has exactly these fields.
#[track_caller]
fn fields(object: &Value, expected: &[&str]) {
    let got: BTreeSet<&str> = object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(got, expected.iter().copied().collect(), "{object:#}");
}

fn is_digest(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.strip_prefix("blake3:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

#[test]
fn pack_json_reports_what_was_written() {
    let app = App::new()
        .file("main.lua", "print('hi')\n")
        .file("lib/util.lua", "return 1\n");
    let out = app.scratch().join("packed");
    let run = Run::of(
        wrapkit()
            .args(["pack", "--json", "-q"])
            .arg(app.path())
            .arg("-o")
            .arg(&out),
    );
    assert_eq!(run.stderr, "");
    let packed = parse(&run.ok());
    fields(
        &packed,
        &[
            "output",
            "files",
            "entries",
            "input_bytes",
            "stub_bytes",
            "total_bytes",
            "digest",
            "elapsed_seconds",
        ],
    );
    assert_eq!(packed["output"], out.to_str().unwrap());
    assert_eq!(packed["files"], 2);
    assert_eq!(packed["entries"], 3, "two files and lib/");
    assert_eq!(packed["input_bytes"], 12 + 9);
    assert_eq!(packed["total_bytes"], fs::metadata(&out).unwrap().len());
    assert!(is_digest(&packed["digest"]), "{packed}");
    assert!(packed["elapsed_seconds"].as_f64().is_some_and(|s| s >= 0.0));
    let info = parse(&Run::of(wrapkit().args(["info", "--json"]).arg(&out)).ok());
    assert_eq!(packed["stub_bytes"], info["stub"]["size"]);
    assert_eq!(packed["digest"], info["digest"]);
    // Without -q the summary line still goes to stderr, the JSON alone to stdout.
    let run = Run::of(
        wrapkit()
            .args(["pack", "--json"])
            .arg(app.path())
            .arg("-o")
            .arg(&out),
    );
    assert!(run.stderr.starts_with("packed 2 files"), "{}", run.stderr);
    parse(&run.ok());
    let err = Run::of(wrapkit().args(["pack", "--json", "--list"]).arg(app.path())).fails_with(2);
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn verify_json_on_success_and_an_error_block_on_failure() {
    let packed = App::new().file("main.lua", "print(1)\n").pack(&[]);
    let verified = parse(&Run::of(wrapkit().args(["verify", "--json"]).arg(&packed.exe)).ok());
    fields(&verified, &["file", "entries", "files", "bytes", "digest"]);
    assert_eq!(verified["file"], packed.exe.to_str().unwrap());
    assert_eq!(verified["entries"], 1);
    assert_eq!(verified["files"], 1);
    assert_eq!(verified["bytes"], 9);
    let info = parse(&Run::of(wrapkit().args(["info", "--json"]).arg(&packed.exe)).ok());
    assert_eq!(verified["digest"], info["digest"]);
    // One byte of the script changed: exit 1, nothing on stdout, the region on stderr.
    let mut bytes = packed.bytes();
    let at = bytes
        .windows(8)
        .rposition(|w| w == b"print(1)")
        .expect("the script is stored");
    bytes[at] ^= 1;
    let bad = packed.variant("bad", &bytes);
    let run = Run::of(wrapkit().args(["verify", "--json"]).arg(&bad));
    assert_eq!(run.stdout, "");
    let err = run.fails_with(1);
    assert!(
        err.starts_with("error: ") && err.contains("verification failed"),
        "{err}"
    );
}

#[test]
fn cache_ls_and_verify_json() {
    let cache = CacheDir::new();
    let cache_json = |args: &[&str]| {
        Run::of(
            wrapkit()
                .arg("cache")
                .args(args)
                .arg("--json")
                .env("WRAPKIT_CACHE_DIR", cache.path()),
        )
    };
    // No cache yet: still an array.
    assert_eq!(parse(&cache_json(&["ls"]).ok()), Value::Array(vec![]));
    assert_eq!(parse(&cache_json(&["verify"]).ok()), Value::Array(vec![]));

    let packed = probe_app("0123456789\n", PROBE_TOML).pack(&[]);
    cache.run(&packed, &["exit", "0"]).ok();
    let digest = cache
        .tree()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let ls = parse(&cache_json(&["ls"]).ok());
    let [tree] = ls.as_array().unwrap().as_slice() else {
        panic!("one tree: {ls:#}");
    };
    fields(
        tree,
        &[
            "digest",
            "kind",
            "path",
            "state",
            "size",
            "last_used",
            "app",
            "executables",
        ],
    );
    assert_eq!(tree["digest"], digest.as_str());
    assert_eq!(tree["path"], cache.tree().to_str().unwrap());
    assert_eq!(tree["state"], "complete");
    assert!(tree["size"].as_u64().is_some_and(|n| n > 0), "{tree}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let last_used = tree["last_used"].as_u64().expect("seconds since the epoch");
    assert!(last_used <= now && now - last_used < 2 * 86_400, "{tree}");
    fields(&tree["app"], &["name", "version"]);
    assert_eq!(tree["app"]["name"], "probe");
    assert_eq!(tree["app"]["version"], "1.0");
    let [exe] = tree["executables"].as_array().unwrap().as_slice() else {
        panic!("one executable: {tree:#}");
    };
    fields(exe, &["path", "state"]);
    assert_eq!(exe["path"], packed.exe.to_str().unwrap());
    assert_eq!(exe["state"], "present");

    let checked = parse(&cache_json(&["verify"]).ok());
    let [one] = checked.as_array().unwrap().as_slice() else {
        panic!("one tree: {checked:#}");
    };
    fields(one, &["digest", "state", "app", "problem"]);
    assert_eq!(one["digest"], digest.as_str());
    assert_eq!(one["state"], "ok");
    assert_eq!(one["problem"], Value::Null);

    // A damaged tree: exit 1, the JSON names the problem, the error block is on stderr.
    fs::write(cache.tree().join("data.txt"), "9876543210\n").unwrap();
    let run = cache_json(&["verify"]);
    let checked = parse(&run.stdout);
    assert_eq!(checked[0]["state"], "damaged");
    assert!(
        checked[0]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("data.txt")),
        "{checked:#}"
    );
    let err = run.fails_with(1);
    assert!(
        err.starts_with("error: 1 of 1 cached trees is damaged\nhint: `wrapkit cache clear "),
        "{err}"
    );
    // The executable repacked: its state says so.
    let repacked = probe_app("other\n", PROBE_TOML).pack_to(&packed.exe, &[]);
    assert_eq!(repacked.code, Some(0), "{}", repacked.stderr);
    let ls = parse(&cache_json(&["ls"]).ok());
    assert_eq!(ls[0]["executables"][0]["state"], "repacked", "{ls:#}");
}
