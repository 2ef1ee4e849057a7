//! Exec mode, end to end: a static C program packed with `exec = [...]`, run through the cache
//! as a user would, including every fault listed under "The cache" in the hostile-inputs brief.
//! Each test has its own cache directory (`WRAPKIT_CACHE_DIR`), so they run in parallel.
//! Tests that need root (mounting a `noexec` or tiny tmpfs, a cache owned by someone else)
//! say "skipped: …" when not run as root, and fail instead under `WRAPKIT_TEST_REQUIRE_ROOT`,
//! which CI (running as root) sets.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use crate::support::{App, Packed, Run, is_root, require_root};

pub const CACHE_ERROR: i32 = 122;
pub const CANNOT_EXECUTE: i32 = 126;
pub const NOT_FOUND: i32 = 127;

/// A small static program whose behaviour the tests choose with its first argument:
/// `env` prints its pid, argv and the wrapkit variables; `cat FILE` prints a file;
/// `write FILE` creates or truncates one; `exit N` exits N; `trap` waits for TERM/INT/HUP and exits 100+N; `pause` waits with the
/// default dispositions (so a signal kills it).
const PROBE_C: &str = r#"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void on_signal(int n) { char m[32]; int l = snprintf(m, sizeof m, "got %d\n", n); write(1, m, l); _exit(100 + n); }
int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "env";
  if (!strcmp(mode, "env")) {
    printf("pid=%d\n", (int)getpid());
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    const char *vars[] = {"WRAPKIT_ROOT", "WRAPKIT_EXE", "APP_HOME", "APP_MODE", 0};
    for (int i = 0; vars[i]; i++) { const char *v = getenv(vars[i]); printf("%s=%s\n", vars[i], v ? v : "(unset)"); }
    return 0;
  }
  if (!strcmp(mode, "cat") && argc > 2) {
    FILE *f = fopen(argv[2], "r"); if (!f) { perror(argv[2]); return 3; }
    char buf[4096]; size_t n; while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    return 0;
  }
  if (!strcmp(mode, "exit") && argc > 2) return atoi(argv[2]);
  if (!strcmp(mode, "write") && argc > 2) {
    FILE *f = fopen(argv[2], "w"); if (!f) { perror(argv[2]); return 4; }
    fputs("written\n", f); fclose(f); return 0;
  }
  if (!strcmp(mode, "trap")) {
    signal(SIGTERM, on_signal); signal(SIGINT, on_signal); signal(SIGHUP, on_signal);
    printf("ready\n"); fflush(stdout);
    for (;;) pause();
  }
  if (!strcmp(mode, "pause")) { printf("ready\n"); fflush(stdout); for (;;) pause(); }
  fprintf(stderr, "probe: unknown mode %s\n", mode);
  return 2;
}
"#;

/// The probe, compiled once per test run (static, so it runs anywhere).
pub fn probe() -> &'static [u8] {
    static PROBE: OnceLock<Vec<u8>> = OnceLock::new();
    PROBE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("probe.c");
        fs::write(&src, PROBE_C).unwrap();
        let out = dir.path().join("probe");
        let status = Command::new("cc")
            .args(["-static", "-Os", "-s", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("a C compiler (cc) is needed for the exec tests");
        assert!(status.success(), "compiling the probe failed");
        fs::read(&out).unwrap()
    })
}

/// An app holding the probe as `bin/probe` (mode 0755) and `data.txt`.
pub fn probe_app(data: &str, toml: &str) -> App {
    let app = App::new()
        .file("bin/probe", probe())
        .file("data.txt", data)
        .file("wrapkit.toml", toml);
    fs::set_permissions(
        app.path().join("bin/probe"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    app
}

pub const PROBE_TOML: &str = "name = \"probe\"\nversion = \"1.0\"\nexec = [\"bin/probe\"]\n";

/// A private cache directory for one test (removed with the returned guard).
pub struct CacheDir {
    pub tmp: tempfile::TempDir,
}

impl CacheDir {
    pub fn new() -> CacheDir {
        CacheDir {
            tmp: tempfile::Builder::new()
                .prefix("wk-cache-")
                .tempdir()
                .unwrap(),
        }
    }

    /// The value for WRAPKIT_CACHE_DIR.
    pub fn path(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    pub fn bundles(&self) -> PathBuf {
        self.path().join("bundles-v1")
    }

    /// Names in bundles-v1, sorted.
    pub fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.bundles())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The one tree in the cache.
    pub fn tree(&self) -> PathBuf {
        let trees: Vec<String> = self
            .listing()
            .into_iter()
            .filter(|n| n.len() == 64)
            .collect();
        assert_eq!(trees.len(), 1, "expected one tree: {:?}", self.listing());
        self.bundles().join(&trees[0])
    }

    /// A command running `packed` with this cache.
    pub fn cmd(&self, packed: &Packed) -> Command {
        let mut cmd = packed.cmd();
        cmd.env("WRAPKIT_CACHE_DIR", self.path());
        cmd
    }

    pub fn run(&self, packed: &Packed, args: &[&str]) -> Run {
        Run::of(self.cmd(packed).args(args))
    }
}

/// The value of `KEY=` in the probe's `env` output.
pub fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

/// Asserts the shape of a runtime failure: nothing ran, one `error:` line, a hint naming the
/// override variable, the documented code.
#[track_caller]
pub fn refused(run: Run, code: i32, needle: &str) -> String {
    assert_eq!(run.stdout, "", "the program must not run");
    let err = run.fails_with(code);
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(err.contains(needle), "expected `{needle}` in:\n{err}");
    err
}

#[test]
fn runs_the_program_with_its_arguments_environment_and_pid() {
    let toml = "exec = [\"bin/probe\", \"env\", \"--data={root}/data.txt\", \"{exe}\"]\n\
                env = { APP_HOME = \"{root}\", APP_MODE = \"x{y}\" }\n";
    let packed = probe_app("hello\n", toml).pack(&[]);
    let cache = CacheDir::new();
    for _ in 0..2 {
        // The first start fills the cache, the second is warm: both behave the same.
        let child = cache
            .cmd(&packed)
            .args(["user arg", "--flag"])
            .env("WRAPKIT_ROOT", "/spoofed")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stderr, b"");
        let out = String::from_utf8(out.stdout).unwrap();
        let root = cache.tree();
        let root = root.to_str().unwrap();
        // execve: the program is the process we started.
        assert_eq!(field(&out, "pid"), pid.to_string());
        assert_eq!(field(&out, "argv[0]"), format!("{root}/bin/probe"));
        assert_eq!(field(&out, "argv[2]"), format!("--data={root}/data.txt"));
        assert_eq!(field(&out, "argv[3]"), packed.exe.to_str().unwrap());
        assert_eq!(field(&out, "argv[4]"), "user arg");
        assert_eq!(field(&out, "argv[5]"), "--flag");
        assert_eq!(field(&out, "WRAPKIT_ROOT"), root);
        assert_eq!(field(&out, "WRAPKIT_EXE"), packed.exe.to_str().unwrap());
        assert_eq!(field(&out, "APP_HOME"), root);
        assert_eq!(field(&out, "APP_MODE"), "x{y}");
    }
    let bundles = cache.listing();
    assert_eq!(bundles.len(), 3, "tree, marker, lock: {bundles:?}");
    let mode = fs::metadata(cache.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(cache.path().join("CACHEDIR.TAG").is_file());
}

#[test]
fn the_exit_status_is_the_programs() {
    let packed = probe_app("", PROBE_TOML).pack(&[]);
    let cache = CacheDir::new();
    for code in [0, 1, 42, 255] {
        let run = cache.run(&packed, &["exit", &code.to_string()]);
        assert_eq!(run.code, Some(code), "{}", run.stderr);
    }
}

/// Starts the program in `mode`, waits for its "ready", sends `signal`, returns what it showed.
fn signal_run(cache: &CacheDir, packed: &Packed, mode: &str, signal: i32) -> Run {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::process::ExitStatusExt;
    // Through `env --default-signal`, which execs it (same pid) with the three signals at their
    // default action: the stub passes dispositions on as it got them, so a test run under
    // `nohup` (SIGHUP ignored) would otherwise wait forever for `pause` to die.
    let mut child = Command::new("env")
        .arg("--default-signal=HUP,INT,TERM")
        .arg(&packed.exe)
        .env("WRAPKIT_CACHE_DIR", cache.path())
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // Our own child, which we have not reaped yet: the pid cannot have been reused.
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let signal = rustix::process::Signal::from_named_raw(signal).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Run {
        code: status.code(),
        signal: status.signal(),
        stdout: rest,
        stderr,
    }
}

const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

#[test]
fn signals_reach_the_program_and_its_status_passes_through() {
    let packed = probe_app("", PROBE_TOML).pack(&[]);
    let cache = CacheDir::new();
    for sig in [SIGTERM, SIGINT, SIGHUP] {
        // The program handles it: its own exit status comes back.
        let run = signal_run(&cache, &packed, "trap", sig);
        assert_eq!(run.stdout, format!("got {sig}\n"));
        assert_eq!(run.code, Some(100 + sig));
        // The program does not: it dies of the signal, which a shell shows as 128+N.
        let run = signal_run(&cache, &packed, "pause", sig);
        assert_eq!((run.code, run.signal), (None, Some(sig)), "{}", run.stderr);
    }
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" pause & sleep 0.5; kill -TERM $!; wait $!"#)
        .arg(&packed.exe)
        .env("WRAPKIT_CACHE_DIR", cache.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(128 + SIGTERM));
}

#[test]
fn sixteen_concurrent_cold_starts_fifty_rounds() {
    let toml = "exec = [\"bin/probe\", \"cat\", \"{root}/data.txt\"]\n";
    let packed = probe_app("shared data\n", toml).pack(&[]);
    let started = Instant::now();
    for round in 0..50 {
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
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "round {round}: {stderr}");
            assert_eq!(out.stdout, b"shared data\n", "round {round}: {stderr}");
        }
        let listing = cache.listing();
        assert_eq!(
            listing.len(),
            3,
            "round {round}: one tree, marker, lock: {listing:?}"
        );
        assert!(
            listing.iter().all(|n| !n.starts_with('.')),
            "round {round}: leftovers {listing:?}"
        );
    }
    eprintln!(
        "16 x 50 cold starts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// An app large enough that a fill takes a while, so a kill lands inside it.
fn large_app() -> Packed {
    let mut app = probe_app("large\n", PROBE_TOML);
    let mut x: u32 = 0x9e37_79b9;
    for i in 0..400 {
        let mut noise = Vec::with_capacity(32 * 1024);
        for _ in 0..32 * 1024 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            noise.push(x as u8);
        }
        app = app.file(&format!("blobs/{:02}/{i:03}.bin", i % 20), noise);
    }
    app.pack(&[])
}

#[test]
fn a_start_killed_at_any_point_of_the_fill_is_repaired_by_the_next() {
    let packed = large_app();
    // Calibrate: how long does one cold start take here?
    let calibrate = CacheDir::new();
    let t = Instant::now();
    assert_eq!(calibrate.run(&packed, &["exit", "0"]).code, Some(0));
    let fill = t.elapsed();
    let steps = 12u32;
    let mut interrupted = 0;
    for step in 0..steps {
        let cache = CacheDir::new();
        let delay = fill * step / steps;
        let mut child = cache
            .cmd(&packed)
            .args(["exit", "0"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // A marker may exist only beside a complete tree.
        let listing = cache.listing();
        if !listing.iter().any(|n| n.ends_with(".ok")) {
            interrupted += 1;
        }
        if listing.iter().any(|n| n.ends_with(".ok")) {
            let verify = Run::of(
                crate::support::wrapkit()
                    .args(["cache", "verify", "--cache-dir"])
                    .arg(cache.path()),
            );
            assert_eq!(
                verify.code,
                Some(0),
                "after a kill at {delay:?}: {verify:?}"
            );
        }
        let run = cache.run(&packed, &["cat", "/dev/null"]);
        assert_eq!(
            run.code,
            Some(0),
            "after a kill at {delay:?}: {}",
            run.stderr
        );
        let tree = cache.tree();
        assert_eq!(
            fs::read_to_string(tree.join("data.txt")).unwrap(),
            "large\n"
        );
        let listing = cache.listing();
        assert!(
            listing.iter().all(|n| !n.starts_with('.')),
            "after a kill at {delay:?}, leftovers remain: {listing:?}"
        );
        let verify = Run::of(
            crate::support::wrapkit()
                .args(["cache", "verify", "--cache-dir"])
                .arg(cache.path()),
        );
        assert_eq!(verify.code, Some(0), "{verify:?}");
    }
    assert!(
        interrupted > 0,
        "no kill landed before the fill finished ({fill:?})"
    );
}

#[test]
fn removed_or_replaced_files_are_detected_and_repaired() {
    let packed = probe_app("0123456789\n", PROBE_TOML).pack(&[]);
    let cache = CacheDir::new();
    cache.run(&packed, &["exit", "0"]).ok();
    let tree = cache.tree();
    let cat = |cache: &CacheDir| {
        Run::of(
            cache
                .cmd(&packed)
                .args(["cat"])
                .arg(tree.join("data.txt"))
                .env("WRAPKIT_DEBUG", "1"),
        )
    };
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 5] = [
        ("deleted data file", |t| {
            fs::remove_file(t.join("data.txt")).unwrap()
        }),
        // What an editor or a cleaner does: a new file in the old one's place.
        ("replaced data file", |t| {
            fs::remove_file(t.join("data.txt")).unwrap();
            fs::write(t.join("data.txt"), "0123").unwrap()
        }),
        ("deleted program", |t| {
            fs::remove_file(t.join("bin/probe")).unwrap()
        }),
        ("file added beside the program", |t| {
            fs::write(t.join("bin/stray"), "x").unwrap()
        }),
        ("deleted directory", |t| {
            fs::remove_dir_all(t.join("bin")).unwrap()
        }),
    ];
    for (what, damage) in damages {
        damage(&tree);
        let run = cat(&cache);
        assert!(run.stderr.contains("repaired"), "{what}: {}", run.stderr);
        assert_eq!(run.ok(), "0123456789\n", "{what}");
        let listing = cache.listing();
        assert_eq!(listing.len(), 3, "{what}: {listing:?}");
        assert!(!tree.join("bin/stray").exists(), "{what}");
    }
    // A file changed in place keeps its directory's time: starts do not see it (that would
    // cost a stat per file), `wrapkit cache verify` does
    // (cache::verify_finds_a_changed_file_that_starts_do_not_notice).
}

#[test]
fn unsafe_cache_directories_are_refused() {
    let packed = probe_app("", PROBE_TOML).pack(&[]);
    let base = tempfile::tempdir().unwrap();

    let real = base.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = base.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let run = Run::of(packed.cmd().env("WRAPKIT_CACHE_DIR", &link));
    let err = refused(run, CACHE_ERROR, "is a symlink");
    assert!(err.contains("hint: set WRAPKIT_CACHE_DIR"), "{err}");

    let open = base.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let run = Run::of(packed.cmd().env("WRAPKIT_CACHE_DIR", &open));
    let err = refused(run, CACHE_ERROR, "writable by other users");
    assert!(err.contains("hint: set WRAPKIT_CACHE_DIR"), "{err}");

    // The same through XDG_CACHE_HOME: the check applies wherever the cache comes from.
    let xdg = base.path().join("xdg");
    fs::create_dir_all(xdg.join("wrapkit")).unwrap();
    fs::set_permissions(xdg.join("wrapkit"), fs::Permissions::from_mode(0o757)).unwrap();
    let run = Run::of(
        packed
            .cmd()
            .env_remove("WRAPKIT_CACHE_DIR")
            .env("XDG_CACHE_HOME", &xdg),
    );
    refused(run, CACHE_ERROR, "writable by other users");

    if !require_root("a cache owned by another user") {
        return;
    }
    let foreign = base.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::set_permissions(&foreign, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let run = Run::of(packed.cmd().env("WRAPKIT_CACHE_DIR", &foreign));
    let err = refused(run, CACHE_ERROR, "belongs to user 65534");
    assert!(err.contains("hint: set WRAPKIT_CACHE_DIR"), "{err}");
    // A bundles-v1 planted by another user inside our own cache is refused too.
    let ours = base.path().join("ours");
    fs::create_dir_all(ours.join("bundles-v1")).unwrap();
    fs::set_permissions(&ours, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(ours.join("bundles-v1"), Some(65534), Some(65534)).unwrap();
    let run = Run::of(packed.cmd().env("WRAPKIT_CACHE_DIR", &ours));
    refused(run, CACHE_ERROR, "belongs to user 65534");
}

#[test]
fn no_home_and_no_override_is_a_clear_error() {
    let packed = probe_app("", PROBE_TOML).pack(&[]);
    let run = Run::of(packed.cmd().env_clear());
    let err = refused(run, CACHE_ERROR, "HOME is not set");
    assert!(err.contains("hint: set WRAPKIT_CACHE_DIR"), "{err}");
    // Relative paths are not silently resolved against the working directory.
    let run = Run::of(
        packed
            .cmd()
            .env_clear()
            .env("WRAPKIT_CACHE_DIR", "rel/cache"),
    );
    refused(run, CACHE_ERROR, "is not an absolute path");
    // Nothing was written to a shared /tmp or the working directory instead.
    assert!(!Path::new("rel").exists());
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn tmpfs(options: &str) -> Mount {
        let dir = tempfile::Builder::new()
            .prefix("wk-mnt-")
            .tempdir()
            .unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount -o {options} failed");
        Mount { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_read_only_home_is_a_clear_error() {
    let packed = probe_app("", PROBE_TOML).pack(&[]);
    let (home, _mount);
    if is_root() {
        // Root ignores permission bits: only a read-only mount is read-only for it.
        let m = Mount::tmpfs("ro,size=1m");
        home = m.path().to_path_buf();
        _mount = Some(m);
    } else {
        let t = tempfile::tempdir().unwrap().keep();
        fs::set_permissions(&t, fs::Permissions::from_mode(0o555)).unwrap();
        home = t;
        _mount = None;
    }
    let run = Run::of(
        packed
            .cmd()
            .env_remove("WRAPKIT_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env("HOME", &home),
    );
    let err = refused(run, CACHE_ERROR, "cannot create the cache directory");
    assert!(err.contains("hint: set WRAPKIT_CACHE_DIR"), "{err}");
}

#[test]
fn a_noexec_cache_is_refused_clearly() {
    if !require_root("mounting a noexec tmpfs") {
        return;
    }
    let packed = probe_app("", PROBE_TOML).pack(&[]);
    let mount = Mount::tmpfs("noexec,size=16m,mode=700");
    let cache = mount.path().join("cache");
    let run = Run::of(packed.cmd().env("WRAPKIT_CACHE_DIR", &cache));
    let err = refused(run, CACHE_ERROR, "noexec");
    assert!(!err.contains("Permission denied"), "{err}");
    assert!(err.contains("hint: set WRAPKIT_CACHE_DIR"), "{err}");
}

#[test]
fn a_full_disk_is_a_clear_error_and_leaves_nothing_behind() {
    if !require_root("mounting a tiny tmpfs") {
        return;
    }
    // The probe alone is larger than the filesystem.
    let packed = probe_app("", PROBE_TOML).pack(&[]);
    let mount = Mount::tmpfs("size=256k,mode=700");
    let cache = mount.path().join("cache");
    let run = Run::of(packed.cmd().env("WRAPKIT_CACHE_DIR", &cache));
    let err = refused(run, CACHE_ERROR, "no space left");
    assert!(err.contains("hint: free some space"), "{err}");
    let mut left: Vec<_> = fs::read_dir(cache.join("bundles-v1"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    left.sort();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "no tree, marker or temp dir may remain"
    );
    // With room, the next start works.
    let status = Command::new("mount")
        .args(["-o", "remount,size=16m"])
        .arg(mount.path())
        .status()
        .unwrap();
    assert!(status.success());
    let run = Run::of(
        packed
            .cmd()
            .env("WRAPKIT_CACHE_DIR", &cache)
            .args(["exit", "5"]),
    );
    assert_eq!(run.code, Some(5), "{}", run.stderr);
}

#[test]
fn spoofed_internal_variables_do_not_redirect_what_runs() {
    let packed = probe_app("real\n", PROBE_TOML).pack(&[]);
    let cache = CacheDir::new();
    // A look-alike tree elsewhere, with a program that would say so if it ran.
    let fake = tempfile::tempdir().unwrap();
    fs::create_dir_all(fake.path().join("bin")).unwrap();
    fs::write(fake.path().join("bin/probe"), "#!/bin/sh\necho EVIL\n").unwrap();
    fs::set_permissions(
        fake.path().join("bin/probe"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::write(fake.path().join("data.txt"), "fake\n").unwrap();
    for round in 0..2 {
        let run = Run::of(
            cache
                .cmd(&packed)
                .arg("env")
                .env("WRAPKIT_ROOT", fake.path())
                .env("WRAPKIT_EXE", fake.path().join("bin/probe"))
                .env("WRAPKIT_EXTRACTED", "1")
                .env("WRAPKIT_BUNDLE", fake.path())
                .env("_WRAPKIT_ROOT", fake.path()),
        );
        let out = run.ok();
        assert!(!out.contains("EVIL"), "round {round}");
        let root = cache.tree();
        assert_eq!(field(&out, "WRAPKIT_ROOT"), root.to_str().unwrap());
        assert_eq!(field(&out, "WRAPKIT_EXE"), packed.exe.to_str().unwrap());
    }
}

#[test]
fn a_repack_under_the_same_name_runs_the_new_content() {
    let cache = CacheDir::new();
    let toml = "exec = [\"bin/probe\", \"cat\", \"{root}/data.txt\"]\n";
    let v1 = probe_app("version one\n", toml);
    let exe = v1.scratch().join("tool");
    assert_eq!(v1.pack_to(&exe, &[]).code, Some(0));
    let run = |exe: &Path| Run::of(Command::new(exe).env("WRAPKIT_CACHE_DIR", cache.path()));
    assert_eq!(run(&exe).ok(), "version one\n");
    let v2 = probe_app("version two\n", toml);
    assert_eq!(v2.pack_to(&exe, &[]).code, Some(0));
    assert_eq!(run(&exe).ok(), "version two\n");
    assert_eq!(run(&exe).ok(), "version two\n");
    let trees = cache
        .listing()
        .into_iter()
        .filter(|n| n.len() == 64)
        .count();
    assert_eq!(trees, 2, "one tree per content digest");
}

#[test]
fn a_missing_interpreter_or_a_bad_format_gets_126_or_127() {
    let cache = CacheDir::new();
    let app = App::new()
        .executable("bin/script", "#!/nonexistent/interpreter\necho hi\n")
        .executable("bin/garbage", "this is not a program\0\0\0\n")
        .file("wrapkit.toml", "exec = [\"bin/script\"]\n");
    let packed = app.pack(&[]);
    let run = cache.run(&packed, &[]);
    let err = refused(run, NOT_FOUND, "bin/script");
    assert!(err.contains("interpreter"), "{err}");
    let packed = app.pack(&["--exec", "bin/garbage"]);
    let run = cache.run(&packed, &[]);
    refused(run, CANNOT_EXECUTE, "bin/garbage");
}

#[test]
fn a_program_through_an_in_tree_symlink_runs_with_its_own_name() {
    let packed = probe_app("", "exec = [\"bin/alias\", \"env\"]\n")
        .symlink("bin/alias", "probe")
        .pack(&[]);
    let cache = CacheDir::new();
    let out = cache.run(&packed, &[]).ok();
    let root = cache.tree();
    assert_eq!(
        field(&out, "argv[0]"),
        format!("{}/bin/alias", root.display())
    );
}

#[test]
fn pack_checks_the_exec_program_and_environment() {
    let cases: [(&str, &[&str], &str); 6] = [
        ("exec = []\n", &[], "it is empty"),
        ("exec = [\"bin/missing\"]\n", &[], "not a file in the app"),
        ("exec = [\"data.txt\"]\n", &[], "not executable"),
        ("exec = [\"../x\"]\n", &[], "not a relative path inside"),
        (
            "exec = [\"bin/probe\"]\nentry = \"other.lua\"\n",
            &[],
            "choose one",
        ),
        (
            "exec = [\"bin/probe\"]\n",
            &["--env", "WRAPKIT_ROOT=/x"],
            "set by the runtime",
        ),
    ];
    for (toml, flags, needle) in cases {
        let app = probe_app("", toml);
        let run = app.pack_to(&app.scratch().join("out"), flags);
        let err = run.fails_with(1);
        assert!(err.contains(needle), "{toml}: {err}");
        assert!(err.contains("hint:"), "{toml}: {err}");
    }
    // Flags make an exec app without any wrapkit.toml key.
    let packed = probe_app("", "").pack(&[
        "--exec",
        "bin/probe",
        "--exec",
        "env",
        "--env",
        "APP_MODE=flag",
    ]);
    let cache = CacheDir::new();
    assert_eq!(field(&cache.run(&packed, &[]).ok(), "APP_MODE"), "flag");
}

#[test]
fn lua_extract_gives_a_real_path_that_a_subprocess_can_use() {
    let main = r#"
local wrapkit = require("wrapkit")
local probe = assert(wrapkit.extract("bin/probe"))
local data = assert(wrapkit.extract(wrapkit.path("data.txt")))
local p = assert(io.popen(probe .. " cat " .. data))
io.write(p:read("a"))
p:close()
print(probe:sub(1, 1) == "/", wrapkit.extract("bin/probe") == probe)
print(wrapkit.extract("missing"))
"#;
    let packed = probe_app("from the tree\n", "")
        .file("main.lua", main)
        .pack(&[]);
    let cache = CacheDir::new();
    let out = cache.run(&packed, &[]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "from the tree", "{out}");
    assert_eq!(lines[1], "true\ttrue", "{out}");
    assert!(
        lines[2].starts_with("nil\t") && lines[2].contains("No such file"),
        "{out}"
    );
    assert_eq!(cache.listing().len(), 3, "materialised once, with a marker");
}

/// Whether `bytes` is an ELF executable without a program interpreter (statically linked).
fn is_static_elf(bytes: &[u8]) -> bool {
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if !bytes.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum as usize).all(|i| u32_at(phoff as usize + i * phentsize as usize) != Some(3))
}

#[test]
fn the_busybox_example_runs_in_an_empty_chroot() {
    let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| fs::read(p).is_ok_and(|b| is_static_elf(&b)))
    else {
        crate::support::missing("no static busybox (apt-get install busybox-static)");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("app");
    let status = Command::new("sh")
        .arg(crate::support::example("busybox").join("prepare.sh"))
        .arg(&app)
        .env("BUSYBOX", busybox)
        .status()
        .unwrap();
    assert!(status.success(), "prepare.sh failed");
    let exe = work.path().join("hello-bb");
    let run = Run::of(
        crate::support::wrapkit()
            .arg("pack")
            .arg(&app)
            .arg("-o")
            .arg(&exe)
            .arg("-q"),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let cache = CacheDir::new();
    let out = Run::of(
        Command::new(&exe)
            .arg("hi")
            .env("WRAPKIT_CACHE_DIR", cache.path()),
    )
    .ok();
    assert!(out.contains("the 3 largest words"), "{out}");
    assert!(
        out.ends_with("materialise\nexecutable\nstarpack\nyou said: hi\n"),
        "{out}"
    );
    if !require_root("the empty-chroot run") {
        return;
    }
    let Some(chroot) = ["/usr/sbin/chroot", "/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        crate::support::missing("no chroot(8)");
        return;
    };
    // Nothing in the chroot but the packed file: no /bin/sh, no /proc, no libc.
    let jail = work.path().join("jail");
    fs::create_dir(&jail).unwrap();
    fs::copy(&exe, jail.join("hello-bb")).unwrap();
    let run = Run::of(
        Command::new(chroot)
            .arg(&jail)
            .arg("/hello-bb")
            .arg("from the chroot")
            .env_clear()
            .env("WRAPKIT_CACHE_DIR", "/cache"),
    );
    let out = run.ok();
    assert!(out.ends_with("you said: from the chroot\n"), "{out}");
}

/// The digest a packed file's tree is named after (from its trailer).
fn digest_of(packed: &Packed) -> String {
    let bytes = packed.bytes();
    let end = crate::support::archive_range(&bytes).end;
    let trailer = String::from_utf8_lossy(&bytes[end - 158..end]).into_owned();
    trailer.split("blake3=").nth(1).unwrap()[..64].to_owned()
}

#[test]
fn a_tree_marker_or_temp_dir_planted_as_a_symlink_is_not_followed() {
    let packed = probe_app("real\n", PROBE_TOML).pack(&[]);
    let digest = digest_of(&packed);
    let cache = CacheDir::new();
    fs::create_dir_all(cache.bundles()).unwrap();
    fs::set_permissions(cache.path(), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(cache.bundles(), fs::Permissions::from_mode(0o700)).unwrap();
    // A look-alike tree elsewhere, complete with a marker, reached through planted symlinks.
    let elsewhere = tempfile::tempdir().unwrap();
    let fake = elsewhere.path().join("tree");
    fs::create_dir_all(fake.join("bin")).unwrap();
    fs::write(fake.join("bin/probe"), "#!/bin/sh\necho EVIL\n").unwrap();
    fs::set_permissions(fake.join("bin/probe"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(fake.join("data.txt"), "fake\n").unwrap();
    let marker = format!("wrapkit-bundle 1\ndigest {digest}\n");
    fs::write(elsewhere.path().join("marker"), marker).unwrap();
    let b = cache.bundles();
    std::os::unix::fs::symlink(&fake, b.join(&digest)).unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path().join("marker"),
        b.join(format!("{digest}.ok")),
    )
    .unwrap();
    std::os::unix::fs::symlink(&fake, b.join(format!(".tmp-{digest}-1"))).unwrap();

    let out = cache.run(&packed, &["cat", "/dev/null"]).ok();
    assert!(!out.contains("EVIL"));
    let root = b.join(&digest);
    assert!(
        fs::symlink_metadata(&root).unwrap().is_dir(),
        "a real directory now"
    );
    assert_eq!(fs::read_to_string(root.join("data.txt")).unwrap(), "real\n");
    // Nothing was written through the links.
    assert_eq!(fs::read_to_string(fake.join("data.txt")).unwrap(), "fake\n");
    assert!(!fake.join(".wrapkit").exists());
    let field_root = field(&cache.run(&packed, &["env"]).ok(), "WRAPKIT_ROOT").to_owned();
    assert_eq!(field_root, root.to_str().unwrap());
}
