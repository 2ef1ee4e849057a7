//! Native programs with their libraries (`--program`, `--libc`, layers): a C program built here
//! against zlib and two libraries of its own, packed, then run where those libraries are not —
//! with the originals hidden in a mount namespace, and alone in an empty chroot — re-executing
//! itself through `argv[0]` and `/proc/self/exe`, with and without `/proc`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::exec::CacheDir;
use crate::support::{App, Packed, Run, require_root, wrapkit};

const PROG_C: &str = r#"
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
const char *outer(void);
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        printf("child: %s zlib %s\n", outer(), zlibVersion());
        return 0;
    }
    if (argc > 1 && (strcmp(argv[1], "again") == 0 || strcmp(argv[1], "proc") == 0)) {
        const char *self = strcmp(argv[1], "proc") == 0 ? "/proc/self/exe" : argv[0];
        char *args[] = { argv[0], "child", NULL };
        fflush(stdout);
        execv(self, args);
        perror("execv");
        return 127;
    }
    printf("%s zlib %s\n", outer(), zlibVersion());
    return 0;
}
"#;

/// The fixture, built once: `prog` needs `libouter.so` (which needs `libgreet.so`, found through
/// the program's DT_RPATH, an absolute build-host path) and the system's libz.
struct Fixture {
    dir: PathBuf,
    prog: PathBuf,
    /// What `prog` prints run directly.
    expected: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("wk-native-")
            .tempdir()
            .unwrap()
            .keep();
        fs::write(
            dir.join("greet.c"),
            "const char *greet(void) { return \"greetings\"; }\n",
        )
        .unwrap();
        fs::write(
            dir.join("outer.c"),
            "const char *greet(void);\nconst char *outer(void) { return greet(); }\n",
        )
        .unwrap();
        fs::write(dir.join("prog.c"), PROG_C).unwrap();
        let cc = |args: &[&str]| {
            let out = Command::new("cc")
                .current_dir(&dir)
                .args(args)
                .output()
                .expect("cc runs (.ci/run installs gcc)");
            assert!(
                out.status.success(),
                "cc {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let rpath = format!("-Wl,-rpath,{}", dir.display());
        cc(&["-shared", "-fPIC", "-o", "libgreet.so", "greet.c"]);
        cc(&[
            "-shared",
            "-fPIC",
            "-o",
            "libouter.so",
            "outer.c",
            "-L.",
            "-lgreet",
        ]);
        cc(&[
            "-o",
            "prog",
            "prog.c",
            "-L.",
            "-louter",
            "-lz",
            "-Wl,--disable-new-dtags",
            &rpath,
        ]);
        let prog = dir.join("prog");
        let expected = Run::of(&mut Command::new(&prog)).ok();
        assert!(expected.starts_with("greetings zlib 1."), "{expected}");
        Fixture {
            dir,
            prog,
            expected,
        }
    })
}

fn pack_prog(libc: &str) -> Packed {
    let prog = fixture().prog.to_str().unwrap().to_owned();
    App::new()
        .file("notes.txt", "an app holding only notes\n")
        .pack(&["--program", &prog, "--libc", libc])
}

/// `packed ARGS` in a mount namespace where the fixture's directory is empty and the system's
/// libz is an empty file: what runs must be what was packed. With `no_proc`, /proc is
/// unmounted too.
fn hidden(cache: &CacheDir, packed: &Packed, args: &[&str], no_proc: bool) -> Run {
    let libz = fs::canonicalize("/lib/x86_64-linux-gnu/libz.so.1").unwrap();
    let script = format!(
        "set -e; mount -t tmpfs none '{}'; mount --bind /dev/null '{}'; {} exec \"$@\"",
        fixture().dir.display(),
        libz.display(),
        if no_proc { "umount -l /proc;" } else { "" }
    );
    Run::of(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
            .arg(&packed.exe)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("WRAPKIT_CACHE_DIR", cache.path()),
    )
}

pub(crate) fn layers(cache: &CacheDir) -> Vec<PathBuf> {
    let mut trees: Vec<PathBuf> = fs::read_dir(cache.path().join("layers-v1"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().unwrap().len() == 64)
                .collect()
        })
        .unwrap_or_default();
    trees.sort();
    trees
}

fn marker(tree: &Path) -> String {
    fs::read_to_string(tree.with_extension("ok")).unwrap()
}

#[test]
fn host_libc_runs_with_the_build_hosts_libraries_hidden_and_reexecutes_itself() {
    if !require_root("a mount namespace") {
        return;
    }
    let f = fixture();
    let packed = pack_prog("host");
    // audit sees the layer as the runtime will run it: every need met, no build-host path.
    let audit = Run::of(wrapkit().arg("audit").arg(&packed.exe)).ok();
    for line in [
        "  libouter.so              bundled  .layers/prog/lib/libouter.so",
        "  libgreet.so              bundled  .layers/prog/lib/libgreet.so",
        "  libz.so.1                bundled  .layers/prog/lib/libz.so.1",
    ] {
        assert!(audit.contains(line), "{line} in:\n{audit}");
    }
    assert!(!audit.contains("search path"), "{audit}");
    let info = Run::of(wrapkit().arg("info").arg(&packed.exe)).ok();
    assert!(
        info.contains("\nrun:         exec .layers/prog/bin/prog\nlayer:       .layers/prog (libc host, glibc >= 2."),
        "{info}"
    );
    let cache = CacheDir::new();
    assert_eq!(hidden(&cache, &packed, &[], false).ok(), f.expected);
    let child = format!("child: {}", f.expected);
    for no_proc in [false, true] {
        assert_eq!(
            hidden(&cache, &packed, &["again"], no_proc).ok(),
            child,
            "argv[0], /proc unmounted: {no_proc}"
        );
    }
    assert_eq!(hidden(&cache, &packed, &["proc"], false).ok(), child);
    // The program ran from its layer, with the host's loader and only its own libraries.
    let [layer] = &layers(&cache)[..] else {
        panic!("one layer expected: {:?}", layers(&cache));
    };
    assert!(marker(layer).contains("\nlibc host\n"), "{}", marker(layer));
    let names: Vec<String> = fs::read_dir(layer.join("lib"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!layer.join("glibc").exists(), "host mode bundles no glibc");
    for lib in ["libouter.so", "libgreet.so", "libz.so.1"] {
        assert!(names.iter().any(|n| n == lib), "{lib} in {names:?}");
    }
    // Read-only: a program run from the cache cannot change it.
    let mode = fs::metadata(layer.join("lib/libz.so.1")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o222,
        0
    );
}

/// An empty root holding only the packed file and a cache directory; `proc` mounts /proc in it.
pub(crate) fn in_empty_root(
    packed: &Packed,
    args: &[&str],
    with_proc: bool,
    extra: &[(&str, &[u8])],
) -> (Run, tempfile::TempDir) {
    let root = tempfile::Builder::new()
        .prefix("wk-root-")
        .tempdir()
        .unwrap();
    fs::copy(&packed.exe, root.path().join("app")).unwrap();
    fs::create_dir(root.path().join("c")).unwrap();
    for (name, bytes) in extra {
        let p = root.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
    let run = run_in_root(root.path(), args, with_proc);
    (run, root)
}

pub(crate) fn run_in_root(root: &Path, args: &[&str], with_proc: bool) -> Run {
    let script = if with_proc {
        format!(
            "set -e; mkdir -p '{0}/proc'; mount -t proc proc '{0}/proc'; exec chroot '{0}' /app \"$@\"",
            root.display()
        )
    } else {
        format!("exec chroot '{}' /app \"$@\"", root.display())
    };
    Run::of(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
            .args(args)
            .env_clear()
            .env("WRAPKIT_CACHE_DIR", "/c"),
    )
}

#[test]
fn bundled_libc_runs_alone_in_an_empty_chroot_with_and_without_proc() {
    if !require_root("chroot") {
        return;
    }
    let f = fixture();
    let packed = pack_prog("bundle");
    let child = format!("child: {}", f.expected);
    let (run, root) = in_empty_root(&packed, &[], false, &[]);
    assert_eq!(run.ok(), f.expected);
    assert_eq!(run_in_root(root.path(), &["again"], false).ok(), child);
    assert_eq!(run_in_root(root.path(), &["again"], true).ok(), child);
    assert_eq!(run_in_root(root.path(), &["proc"], true).ok(), child);
    // Nothing but the packed file and the cache came into the root.
    let mut names: Vec<String> = fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["app", "c", "proc"]);
}

#[test]
fn auto_uses_the_hosts_glibc_when_new_enough_and_its_own_otherwise() {
    if !require_root("chroot") {
        return;
    }
    let f = fixture();
    let packed = pack_prog("auto");
    // On this machine: the host's.
    let cache = CacheDir::new();
    assert_eq!(cache.run(&packed, &[]).ok(), f.expected);
    let [layer] = &layers(&cache)[..] else {
        panic!()
    };
    assert!(marker(layer).contains("\nlibc host\n"), "{}", marker(layer));
    // No glibc at all, and one older than the program needs: its own.
    let old_loader: &[u8] = b"\x7fELF ld.so (GNU libc) stable release version 2.10.\n";
    for extra in [vec![], vec![("lib64/ld-linux-x86-64.so.2", old_loader)]] {
        let (run, root) = in_empty_root(&packed, &[], false, &extra);
        assert_eq!(run.ok(), f.expected, "{extra:?}");
        let layer = fs::read_dir(root.path().join("c/layers-v1"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().len() == 64)
            .unwrap();
        assert!(
            marker(&layer).contains("\nlibc bundle\n"),
            "{}",
            marker(&layer)
        );
    }
}

#[test]
fn two_apps_with_the_same_program_share_one_layer_until_neither_uses_it() {
    let prog = fixture().prog.to_str().unwrap().to_owned();
    let a = App::new()
        .file("a.txt", "a\n")
        .pack(&["--program", &prog, "--libc", "host"]);
    let b = App::new().file("b.txt", "b\n").pack(&[
        "--program",
        &prog,
        "--libc",
        "host",
        "--name",
        "other",
    ]);
    let cache = CacheDir::new();
    for p in [&a, &b] {
        assert_eq!(cache.run(p, &[]).ok(), fixture().expected);
    }
    assert_eq!(layers(&cache).len(), 1, "one shared layer");
    let bundles = cache.listing().iter().filter(|n| n.len() == 64).count();
    assert_eq!(bundles, 2);
    let ls = Run::of(
        wrapkit()
            .args(["cache", "ls", "--json"])
            .env("WRAPKIT_CACHE_DIR", cache.path()),
    )
    .ok();
    let trees: serde_json::Value = serde_json::from_str(&ls).unwrap();
    let kinds: Vec<&str> = trees
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["bundle", "bundle", "layer"]);
    let verify = Run::of(
        wrapkit()
            .args(["cache", "verify"])
            .env("WRAPKIT_CACHE_DIR", cache.path()),
    );
    assert_eq!(verify.code, Some(0), "a patched layer verifies: {verify:?}");

    let gc = || {
        Run::of(
            wrapkit()
                .args(["cache", "gc"])
                .env("WRAPKIT_CACHE_DIR", cache.path()),
        )
        .ok_stderr()
    };
    let layer = layers(&cache).remove(0);
    // Old enough that only use keeps it.
    let age = |t: &Path| {
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        fs::File::options()
            .write(true)
            .open(t.with_extension("ok"))
            .unwrap()
            .set_modified(old)
            .unwrap();
    };
    age(&layer);
    fs::remove_file(&a.exe).unwrap();
    let out = gc();
    assert!(out.contains("removed 1 tree"), "{out}");
    assert_eq!(
        layers(&cache),
        std::slice::from_ref(&layer),
        "b still uses the layer"
    );
    fs::remove_file(&b.exe).unwrap();
    gc();
    let out = gc();
    assert!(layers(&cache).is_empty(), "no app uses it: {out}");
}

#[test]
fn sixteen_concurrent_cold_starts_leave_one_layer_and_a_killed_fill_is_redone() {
    let packed = pack_prog("host");
    for round in 0..5 {
        let cache = CacheDir::new();
        let children: Vec<_> = (0..16)
            .map(|_| {
                cache
                    .cmd(&packed)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), fixture().expected);
        }
        let names: Vec<String> = fs::read_dir(cache.path().join("layers-v1"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "tree, marker, lock: {names:?}");
    }

    // Killed at many points of the layer's fill: never a marker without a complete tree, and
    // the next start repairs it.
    let calibrate = CacheDir::new();
    let t = std::time::Instant::now();
    calibrate.run(&packed, &[]).ok();
    let fill = t.elapsed();
    let mut interrupted = 0;
    for step in 0..10u32 {
        let cache = CacheDir::new();
        let mut child = cache
            .cmd(&packed)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(fill * step / 10);
        let _ = child.kill();
        let _ = child.wait();
        if layers(&cache)
            .iter()
            .all(|l| !l.with_extension("ok").exists())
        {
            interrupted += 1;
        }
        assert_eq!(cache.run(&packed, &[]).ok(), fixture().expected);
        let verify = Run::of(
            wrapkit()
                .args(["cache", "verify"])
                .env("WRAPKIT_CACHE_DIR", cache.path()),
        );
        assert_eq!(
            verify.code,
            Some(0),
            "after a kill at step {step}: {verify:?}"
        );
    }
    assert!(
        interrupted > 0,
        "no kill landed before the fill finished ({fill:?})"
    );
}

#[test]
fn an_exec_program_in_the_app_gets_its_libraries_bundled() {
    if !require_root("a mount namespace") {
        return;
    }
    let f = fixture();
    let app = App::new().file("wrapkit.toml", "exec = [\"bin/prog\"]\n");
    fs::create_dir_all(app.path().join("bin")).unwrap();
    fs::copy(&f.prog, app.path().join("bin/prog")).unwrap();
    let listing = Run::of(
        wrapkit()
            .args(["pack", "--list", "--libc", "host"])
            .arg(app.path()),
    )
    .ok();
    assert!(
        listing.contains(".layers/prog/lib/libouter.so"),
        "{listing}"
    );
    let packed = app.pack(&["--libc", "host"]);
    let cache = CacheDir::new();
    assert_eq!(hidden(&cache, &packed, &[], false).ok(), f.expected);
    // Its place in the app is a link to it, so `{root}/bin/prog` still runs it.
    let tree = cache.tree();
    assert!(
        fs::symlink_metadata(tree.join("bin/prog"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(
        Run::of(&mut Command::new(tree.join("bin/prog"))).ok(),
        f.expected
    );
}

#[test]
fn a_program_whose_libraries_cannot_be_found_is_refused_at_pack_time() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    // Copied away from its libraries and with no rpath to them: libouter is nowhere.
    let cc = Command::new("cc")
        .current_dir(&f.dir)
        .args(["-o"])
        .arg(dir.path().join("lost"))
        .args(["prog.c", "-L.", "-louter", "-lz", "-Wl,-rpath-link,."])
        .output()
        .unwrap();
    assert!(cc.status.success(), "{cc:?}");
    let app = App::new().file("x.txt", "x");
    let run = app.pack_to(
        &app.scratch().join("out"),
        &["--program", dir.path().join("lost").to_str().unwrap()],
    );
    let err = run.fails_with(1);
    assert!(
        err.contains("no library on this machine satisfies libouter.so"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert!(!app.scratch().join("out").exists());
    // A script is not a program.
    let run = app.pack_to(&app.scratch().join("out"), &["--program", "/usr/bin/ldd"]);
    let err = run.fails_with(1);
    assert!(err.contains("not an ELF file"), "{err}");
}

#[test]
fn init_program_writes_an_app_that_runs_alone_in_an_empty_chroot() {
    if !require_root("chroot") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let err = Run::of(
        wrapkit()
            .args(["init", "--program", "greet"])
            .current_dir(work.path()),
    )
    .ok_stderr();
    assert!(err.contains("bundled program (/bin/sh)"), "{err}");
    Run::of(
        wrapkit()
            .args(["pack", "-q", "greet"])
            .current_dir(work.path()),
    )
    .ok();
    let root = work.path().join("root");
    fs::create_dir_all(root.join("c")).unwrap();
    fs::copy(work.path().join("greet.run"), root.join("greet")).unwrap();
    let out = Run::of(
        Command::new("/usr/sbin/chroot")
            .arg(&root)
            .args(["/greet", "there"])
            .env_clear()
            .env("WRAPKIT_CACHE_DIR", "/c"),
    )
    .ok();
    assert!(
        out.starts_with("Hello, there!\n(greet, run by /c/bundles-v1/"),
        "{out}"
    );
}

#[test]
fn init_node_and_tcl_write_apps_that_run_alone_in_an_empty_chroot() {
    if !require_root("chroot") {
        return;
    }
    for (kind, greeting) in [
        ("--node", "(greet, Node.js v"),
        ("--tcl", "(greet, Tcl 8.6"),
    ] {
        let work = tempfile::tempdir().unwrap();
        Run::of(
            wrapkit()
                .args(["init", kind, "greet"])
                .current_dir(work.path()),
        )
        .ok();
        Run::of(
            wrapkit()
                .args(["pack", "-q", "greet"])
                .current_dir(work.path()),
        )
        .ok();
        let root = work.path().join("root");
        fs::create_dir_all(root.join("c")).unwrap();
        fs::copy(work.path().join("greet.run"), root.join("greet")).unwrap();
        let out = Run::of(
            Command::new("/usr/sbin/chroot")
                .arg(&root)
                .args(["/greet", "there"])
                .env_clear()
                .env("WRAPKIT_CACHE_DIR", "/c"),
        )
        .ok();
        assert!(
            out.starts_with(&format!("Hello, there!\n{greeting}")),
            "{kind}: {out}"
        );
    }
}

#[test]
fn python_for_a_lua_app_is_refused_not_run_as_python() {
    let work = tempfile::tempdir().unwrap();
    Run::of(
        wrapkit()
            .args(["init", "-q", "luaapp"])
            .current_dir(work.path()),
    )
    .ok();
    let err = Run::of(
        wrapkit()
            .args(["pack", "luaapp", "--python", "-o", "out"])
            .current_dir(work.path()),
    )
    .fails_with(1);
    assert!(
        err.contains("`main.lua` is a Lua script, and `--python` runs a Python one"),
        "{err}"
    );
    assert!(!work.path().join("out").exists());
}
