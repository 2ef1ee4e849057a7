//! Builds the runtime stub and hands it to the packer, which embeds it: a fresh clone's
//! `cargo build` gives a `wrapkit` that can pack with no flags and no other file beside it.
//!
//! The stub is built by a nested `cargo build` of `wrapkit-runtime` with its own profile
//! (`[profile.stub]`: optimised, LTO, `panic = "abort"`, stripped), its own target directory
//! (`target/stub`, so the outer build's lock is not contended) and `+crt-static`, which must
//! not leak into the packer's own build. Setting `WRAPKIT_STUB=/path/to/stub` skips the nested
//! build and embeds that file instead (for cross builds or packaging).
//!
//! It also records the commit `wrapkit --version` names (`wrapkit 0.1.0 (a1b2c3d4e 2026-12-02)`)
//! in `WRAPKIT_BUILD_COMMIT`: empty when git or the repository is absent (a crate tarball).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=WRAPKIT_STUB");
    commit_info();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dest = out_dir.join("wrapkit-stub");
    let stub = match env::var_os("WRAPKIT_STUB") {
        Some(path) => PathBuf::from(path),
        None => build_stub(),
    };
    std::fs::copy(&stub, &dest).unwrap_or_else(|e| {
        panic!(
            "cannot copy the stub {} to {}: {e}",
            stub.display(),
            dest.display()
        )
    });
}

fn build_stub() -> PathBuf {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("packer/ lives in the workspace");
    for path in [
        "runtime/src",
        "runtime/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let target_dir = stub_target_dir(workspace);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--bin",
            "wrapkit-stub",
            "--profile",
            "stub",
        ])
        .arg("--manifest-path")
        .arg(workspace.join("runtime/Cargo.toml"))
        .arg("--target")
        .arg(&target)
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        // What the outer cargo (or clippy, or a coverage tool) set for itself must not
        // change how the stub is built.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("cannot run cargo to build the runtime stub");
    assert!(
        status.success(),
        "building the runtime stub failed (see the errors above)"
    );
    target_dir.join(&target).join("stub").join("wrapkit-stub")
}

/// `target/stub` beside the outer build's own target directory.
fn stub_target_dir(workspace: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("stub"),
        None => workspace.join("target").join("stub"),
    }
}

/// Sets `WRAPKIT_BUILD_COMMIT` to ` (HASH DATE)`, the short commit and its date, as `cargo
/// --version` shows them, or to nothing when this is not built from a git checkout of wrapkit.
/// Reruns when HEAD moves: `.git/HEAD` changes on a checkout, the branch's ref on a commit.
fn commit_info() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("packer/ lives in the workspace");
    let info = git(workspace, &["rev-parse", "--show-toplevel"])
        // A tarball unpacked inside some other repository must not take that one's commit.
        .filter(|top| Path::new(top).canonicalize().ok() == workspace.canonicalize().ok())
        .and_then(|_| {
            for watched in [
                Some("HEAD".to_owned()),
                git(workspace, &["symbolic-ref", "-q", "HEAD"]),
                Some("packed-refs".to_owned()),
            ]
            .into_iter()
            .flatten()
            {
                // A path that does not exist would make every build rerun this script.
                if let Some(path) = git(workspace, &["rev-parse", "--git-path", &watched])
                    .map(|p| workspace.join(p))
                    .filter(|p| p.exists())
                {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
            let hash = git(workspace, &["rev-parse", "--short=9", "HEAD"])?;
            let date = git(workspace, &["log", "-1", "--format=%cs"])?;
            Some(format!(" ({hash} {date})"))
        })
        .unwrap_or_default();
    println!("cargo:rustc-env=WRAPKIT_BUILD_COMMIT={info}");
}

/// `git ARGS` run in `dir`: its output's first line, or `None` if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().next()?.trim();
    (out.status.success() && !line.is_empty()).then(|| line.to_owned())
}
