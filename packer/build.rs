//! Builds the runtime stub and hands it to the packer, which embeds it: a fresh clone's
//! `cargo build` gives a `wrapkit` that can pack with no flags and no other file beside it.
//!
//! The stub is built by a nested `cargo build` of `wrapkit-runtime` with its own profile
//! (`[profile.stub]`: optimised, LTO, `panic = "abort"`, stripped), its own target directory
//! (`target/stub`, so the outer build's lock is not contended) and `+crt-static`, which must
//! not leak into the packer's own build. Setting `WRAPKIT_STUB=/path/to/stub` skips the nested
//! build and embeds that file instead (for cross builds or packaging).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=WRAPKIT_STUB");
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
