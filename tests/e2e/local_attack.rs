//! Another local user against wrapkit: a setuid or file-capability install started by an
//! unprivileged user, a cache path through directories someone else can change, directories
//! swapped while we work, FIFOs planted where we read, special files as `pack -o`. Each test
//! builds the attack as that user would (`setpriv` to `nobody`, races driven by a bounded
//! loop in another process) and checks what exists afterwards. They need root to set up the
//! other user; CI runs as root with `WRAPKIT_TEST_REQUIRE_ROOT` set, so there they run or fail.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::exec::{CACHE_ERROR, CacheDir, PROBE_TOML, probe_app};
use crate::support::{App, Run, as_nobody, require_root, shared_tempdir, wait_bounded, wrapkit};

const NOBODY: u32 = 65534;

/// Installs `exe` into a fresh directory `nobody` can enter, owned by root with `mode`
/// (e.g. 0o4755 for setuid root).
fn install(exe: &Path, mode: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = shared_tempdir(false);
    let installed = dir.path().join("app");
    fs::copy(exe, &installed).unwrap();
    std::os::unix::fs::chown(&installed, Some(0), Some(0)).unwrap();
    fs::set_permissions(&installed, fs::Permissions::from_mode(mode)).unwrap();
    (dir, installed)
}

/// A directory owned by `nobody`, in a directory `nobody` can enter: the attacker's.
fn attacker_dir() -> (tempfile::TempDir, PathBuf) {
    let outer = shared_tempdir(false);
    let mine = outer.path().join("attacker");
    fs::create_dir(&mine).unwrap();
    std::os::unix::fs::chown(&mine, Some(NOBODY), Some(NOBODY)).unwrap();
    (outer, mine)
}

/// Every path under `dir` with its owner, sorted.
fn owners(dir: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let meta = e.path().symlink_metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            }
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            out.push((rel, meta.uid()));
        }
    }
    out.sort();
    out
}

/// `renameat2(a, b, RENAME_EXCHANGE)` in a loop for `secs` seconds, as `nobody`; prints how
/// many swaps succeeded and failed.
fn swapper(a: &Path, b: &Path, secs: f64) -> std::process::Child {
    attacker_loop(
        "if libc.renameat2(-100, a, -100, b, 2) != 0: raise OSError()",
        a,
        b,
        secs,
    )
}

/// As `nobody`, for at most `secs` seconds: wait for the directory `a` to appear, then swap it
/// atomically with a symlink to `b` (made beside it only then, so the target looked empty).
fn replacer(a: &Path, b: &Path, secs: f64) -> std::process::Child {
    attacker_loop(
        "e = a + b'.evil'\n\
         \x20       if ok or not os.path.isdir(a) or os.path.islink(a): raise OSError()\n\
         \x20       os.path.lexists(e) or os.symlink(b, e)\n\
         \x20       if libc.renameat2(-100, a, -100, e, 2) != 0: raise OSError()",
        a,
        b,
        secs,
    )
}

/// Runs `step` (Python, with `a` and `b` as bytes) in a loop as `nobody`; prints how many
/// steps succeeded and how many raised.
fn attacker_loop(step: &str, a: &Path, b: &Path, secs: f64) -> std::process::Child {
    let script = format!(
        "import ctypes, os, sys, time\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         a, b = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])\n\
         end = time.time() + float(sys.argv[3]); ok = bad = 0\n\
         while time.time() < end:\n\
         \x20   try:\n\
         \x20       {step}\n\
         \x20       ok += 1\n\
         \x20   except OSError:\n\
         \x20       bad += 1\n\
         print(ok, bad)\n"
    );
    as_nobody("python3")
        .arg("-c")
        .arg(script)
        .arg(a)
        .arg(b)
        .arg(secs.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs")
}

fn swaps(child: std::process::Child) -> (u64, u64) {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|n| n.parse().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn a_setuid_exec_app_ignores_the_callers_environment_and_refuses_to_run() {
    if !require_root("installing a setuid-root file") {
        return;
    }
    let packed = probe_app("secret\n", PROBE_TOML).pack(&[]);
    let (_d, app) = install(&packed.exe, 0o4755);
    let (_o, mine) = attacker_dir();
    // The attacker swaps their cache directory's parent in a loop while starting the app, as
    // in the original exploit; the app must not even look there.
    fs::create_dir(mine.join("a")).unwrap();
    fs::create_dir(mine.join("b")).unwrap();
    for d in ["a", "b"] {
        std::os::unix::fs::chown(mine.join(d), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let before_swaps = owners(&mine);
    let loop_ = swapper(&mine.join("a"), &mine.join("b"), 2.0);
    for _ in 0..20 {
        let run = Run::of(
            as_nobody(&app)
                .arg("env")
                .env("WRAPKIT_CACHE_DIR", mine.join("a/cache"))
                .env("XDG_CACHE_HOME", &mine)
                .env("HOME", &mine)
                .env("WRAPKIT_DEBUG", "1"),
        );
        assert_eq!(run.stdout, "", "the program ran");
        let err = run.fails_with(CACHE_ERROR);
        assert_eq!(
            err,
            format!(
                "error: {}: refusing to run from a cache in a privileged process (setuid, setgid or file capabilities): its environment, and so the cache location, belongs to the user who started it\n\
                 hint: install the file without the setuid or setgid bit and without file capabilities; to run it as another user, use sudo, runuser or a systemd unit with User=\n",
                app.display()
            ),
            "no trace line either: WRAPKIT_DEBUG is not honoured"
        );
    }
    let (ok, _) = swaps(loop_);
    assert!(
        ok > 0,
        "the swap loop never swapped: the test proves nothing"
    );
    // Nothing was created in the attacker's directory, and nothing there belongs to root.
    let after = owners(&mine);
    assert_eq!(after.len(), before_swaps.len(), "{after:?}");
    assert!(after.iter().all(|(_, uid)| *uid == NOBODY), "{after:?}");
}

#[test]
fn a_setuid_lua_app_still_runs_and_its_extract_is_refused() {
    if !require_root("installing a setuid-root file") {
        return;
    }
    let packed = App::new()
        .file(
            "main.lua",
            "local w = require('wrapkit')\nprint('lua runs')\nprint(w.extract('main.lua'))\n",
        )
        .pack(&[]);
    let (_d, app) = install(&packed.exe, 0o4755);
    let (_o, mine) = attacker_dir();
    let out = Run::of(
        as_nobody(&app)
            .env("WRAPKIT_CACHE_DIR", &mine)
            .env("HOME", &mine),
    )
    .ok();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("lua runs"));
    let refusal = lines.next().unwrap();
    assert!(
        refusal.starts_with("nil\t")
            && refusal.contains("refusing to run from a cache in a privileged process"),
        "{refusal}"
    );
    assert!(owners(&mine).is_empty());
}

#[test]
fn file_capabilities_make_a_process_privileged_too() {
    if !require_root("setting file capabilities") {
        return;
    }
    let packed = probe_app("", PROBE_TOML).pack(&[]);
    let (_d, app) = install(&packed.exe, 0o755);
    let status = Command::new("setcap")
        .arg("cap_net_bind_service+ep")
        .arg(&app)
        .status()
        .expect("setcap (libcap2-bin) is installed");
    assert!(status.success());
    let (_o, mine) = attacker_dir();
    let run = Run::of(as_nobody(&app).env("WRAPKIT_CACHE_DIR", &mine));
    let err = run.fails_with(CACHE_ERROR);
    assert!(err.contains("privileged process"), "{err}");
    assert!(owners(&mine).is_empty());
    // The same file without the capability runs for that user, from their own cache.
    let (_d2, plain) = install(&packed.exe, 0o755);
    let out = Run::of(as_nobody(&plain).env("WRAPKIT_CACHE_DIR", mine.join("c"))).ok();
    assert!(out.contains("WRAPKIT_ROOT="), "{out}");
}

#[test]
fn a_cache_beneath_a_directory_another_user_owns_is_refused() {
    if !require_root("a directory owned by another user") {
        return;
    }
    // Root starting an app whose cache path runs through a directory `nobody` owns: nobody
    // could swap the cache for their own programs.
    let packed = probe_app("", PROBE_TOML).pack(&[]);
    let (_o, mine) = attacker_dir();
    let run = Run::of(packed.cmd().env("WRAPKIT_CACHE_DIR", mine.join("cache")));
    let err = crate::exec::refused(run, CACHE_ERROR, "belongs to user 65534");
    assert!(err.contains(&mine.display().to_string()), "{err}");
    assert!(
        err.contains("hint: set WRAPKIT_CACHE_DIR to a directory whose parents"),
        "{err}"
    );
    assert!(owners(&mine).is_empty(), "created something beneath it");
}

#[test]
fn a_cache_beneath_a_world_writable_directory_is_refused_unless_it_is_sticky() {
    let packed = probe_app("", PROBE_TOML).pack(&[]);
    let open = shared_tempdir(true);
    let run = Run::of(
        packed
            .cmd()
            .env("WRAPKIT_CACHE_DIR", open.path().join("c/cache")),
    );
    crate::exec::refused(
        run,
        CACHE_ERROR,
        "writable by other users (mode 0777) and not sticky",
    );
    assert_eq!(fs::read_dir(open.path()).unwrap().count(), 0);
    // Group-writable counts too.
    fs::set_permissions(open.path(), fs::Permissions::from_mode(0o775)).unwrap();
    let run = Run::of(
        packed
            .cmd()
            .env("WRAPKIT_CACHE_DIR", open.path().join("cache")),
    );
    crate::exec::refused(run, CACHE_ERROR, "(mode 0775) and not sticky");
    // A sticky directory, like /tmp, is fine: others cannot rename or remove our entries.
    fs::set_permissions(open.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let out = Run::of(
        packed
            .cmd()
            .env("WRAPKIT_CACHE_DIR", open.path().join("c/cache")),
    )
    .ok();
    assert!(out.contains("WRAPKIT_ROOT="), "{out}");
}

#[test]
fn another_user_swapping_entries_of_a_sticky_parent_cannot_redirect_what_runs() {
    if !require_root("a second user") {
        return;
    }
    let packed = probe_app("the real data\n", PROBE_TOML).pack(&[]);
    let sticky = shared_tempdir(true);
    fs::set_permissions(sticky.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let cache = sticky.path().join("victim");
    // The attacker's look-alike next to it: a cache whose tree would print other data.
    let evil = sticky.path().join("evil");
    fs::create_dir(&evil).unwrap();
    std::os::unix::fs::chown(&evil, Some(NOBODY), Some(NOBODY)).unwrap();
    let loop_ = swapper(&cache, &evil, 1.5);
    let probe = |cmd: &mut Command| Run::of(cmd.env("WRAPKIT_CACHE_DIR", &cache));
    for _ in 0..30 {
        let out = probe(packed.cmd().arg("env")).ok();
        assert!(
            out.contains(&format!("WRAPKIT_ROOT={}", cache.display())),
            "{out}"
        );
    }
    let (ok, bad) = swaps(loop_);
    assert_eq!(
        ok, 0,
        "another user swapped our cache out of a sticky directory"
    );
    assert!(bad > 0, "the swap loop never ran");
}

#[test]
fn a_directory_swapped_for_a_symlink_during_extract_redirects_nothing() {
    if !require_root("a second user") {
        return;
    }
    // Root extracts into a directory `nobody` owns; nobody swaps `sub` (which extract just
    // created) with a symlink to elsewhere, over and over, while files are written into it.
    let mut app = App::new().file("main.lua", "print(1)");
    for i in 0..1500 {
        app = app.file(&format!("sub/f{i:04}"), "x");
    }
    let packed = app.pack(&["--compression", "store"]);
    let elsewhere = shared_tempdir(true);
    let mut replaced = 0;
    for round in 0..3 {
        let (_o, target) = attacker_dir();
        let loop_ = replacer(&target.join("sub"), elsewhere.path(), 1.0);
        let run = Run::of(wrapkit().arg("extract").arg(&packed.exe).arg(&target));
        replaced += swaps(loop_).0;
        if run.code != Some(0) {
            assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
        }
        let leaked: Vec<_> = fs::read_dir(elsewhere.path()).unwrap().flatten().collect();
        assert!(
            leaked.is_empty(),
            "round {round}: wrote through the swapped link: {leaked:?}"
        );
    }
    assert!(
        replaced > 0,
        "the attacker never swapped `sub`: the test proves nothing"
    );
}

#[test]
fn extract_refuses_a_symlinked_target_however_it_is_written() {
    let packed = App::new().file("main.lua", "print(1)").pack(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, tmp.path().join("link")).unwrap();
    for spelling in ["link", "link/", "link/.", "link//."] {
        let target = format!("{}/{spelling}", tmp.path().display());
        let err = Run::of(wrapkit().arg("extract").arg(&packed.exe).arg(&target)).fails_with(1);
        assert!(err.contains("not a symlink"), "{spelling}: {err}");
        assert_eq!(fs::read_dir(&real).unwrap().count(), 0, "{spelling}");
    }
}

#[test]
fn fifos_planted_in_the_cache_or_as_a_recorded_executable_never_hang() {
    let packed = probe_app("", PROBE_TOML).pack(&[]);
    let cache = CacheDir::new();
    // Start it from a path of its own, so that path is recorded in the marker.
    let spot = tempfile::tempdir().unwrap();
    let exe = spot.path().join("app");
    fs::copy(&packed.exe, &exe).unwrap();
    let start = |exe: &Path| {
        let child = Command::new(exe)
            .arg("exit")
            .arg("7")
            .env("WRAPKIT_CACHE_DIR", cache.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_bounded(child, Duration::from_secs(20))
    };
    assert_eq!(start(&exe).code, Some(7));
    let tree = cache.tree();
    let digest = tree.file_name().unwrap().to_str().unwrap().to_owned();
    let mkfifo = |p: &Path| {
        let _ = fs::remove_file(p);
        assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
    };
    // The marker is a FIFO: the start treats the tree as unfinished and repairs it.
    mkfifo(&cache.bundles().join(format!("{digest}.ok")));
    assert_eq!(start(&exe).code, Some(7));
    assert!(
        fs::metadata(cache.bundles().join(format!("{digest}.ok")))
            .unwrap()
            .is_file()
    );
    // The lock is a FIFO (and the marker gone): a clear error, no hang.
    fs::remove_file(cache.bundles().join(format!("{digest}.ok"))).unwrap();
    mkfifo(&cache.bundles().join(format!("{digest}.lock")));
    let run = start(&exe);
    assert_eq!(run.code, Some(CACHE_ERROR), "{}", run.stderr);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    fs::remove_file(cache.bundles().join(format!("{digest}.lock"))).unwrap();
    assert_eq!(start(&exe).code, Some(7));
    // The recorded executable is replaced by a FIFO: `cache ls` and `cache gc` do not block.
    mkfifo(&exe);
    for args in [&["cache", "ls"][..], &["cache", "gc", "--dry-run"][..]] {
        let child = wrapkit()
            .args(args)
            .env("WRAPKIT_CACHE_DIR", cache.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let run = wait_bounded(child, Duration::from_secs(20));
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn pack_refuses_to_replace_a_device_fifo_or_directory() {
    let app = App::new().file("main.lua", "print(1)");
    let fifo = app.scratch().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let dir = app.scratch().join("dir");
    fs::create_dir(&dir).unwrap();
    for (out, kind) in [
        (PathBuf::from("/dev/null"), "device"),
        (fifo.clone(), "fifo"),
        (dir.clone(), "directory"),
    ] {
        let err = app.pack_to(&out, &[]).fails_with(1);
        assert!(
            err.starts_with(&format!(
                "error: the output {} is a {kind}, not a file; refusing to replace it\n",
                out.display()
            )),
            "{err}"
        );
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(
        fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(dir.is_dir());
    // A regular file is replaced, as always.
    let file = app.scratch().join("file");
    fs::write(&file, "old").unwrap();
    assert_eq!(app.pack_to(&file, &[]).code, Some(0));
}

#[test]
fn a_program_run_from_the_cache_cannot_change_its_tree() {
    if !require_root("running as another user") {
        return;
    }
    let packed = probe_app("data\n", PROBE_TOML).pack(&[]);
    let (_d, app) = install(&packed.exe, 0o755);
    let (_o, mine) = attacker_dir();
    let cache = mine.join("c");
    let run = |args: &[&str]| {
        Run::of(
            as_nobody(&app)
                .args(args)
                .env("WRAPKIT_CACHE_DIR", &cache)
                .env("WRAPKIT_DEBUG", "1"),
        )
    };
    let root = crate::exec::field(&run(&["env"]).ok(), "WRAPKIT_ROOT").to_owned();
    // Neither a file it holds nor a new one (Python's `__pycache__`) can be written.
    for target in [format!("{root}/data.txt"), format!("{root}/new.pyc")] {
        let out = run(&["write", &target]);
        assert_eq!(out.code, Some(4), "{target} was written: {out:?}");
        assert!(out.stderr.contains("Permission denied"), "{out:?}");
    }
    assert_eq!(
        fs::read_to_string(format!("{root}/data.txt")).unwrap(),
        "data\n"
    );
    // So every later start is warm: nothing to repair.
    for _ in 0..3 {
        let err = run(&["exit", "0"]).ok_stderr();
        assert!(err.contains("warm start"), "{err}");
    }
    // A layer, whose program the fill patches, is filled by an ordinary user too, and ends
    // read-only like the rest.
    let layered = App::new().file("x.txt", "x").pack(&[
        "--program",
        "/bin/sh",
        "--arg",
        "-c",
        "--arg",
        "echo layered; echo x > \"${0%/*}/new\"",
    ]);
    let (_d2, app2) = install(&layered.exe, 0o755);
    let out = Run::of(as_nobody(&app2).env("WRAPKIT_CACHE_DIR", &cache));
    assert_eq!(out.stdout, "layered\n", "{out:?}");
    assert!(out.stderr.contains("Permission denied"), "{out:?}");
}
