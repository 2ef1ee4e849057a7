//! A small builder for end-to-end tests: write an app directory, pack it with the real
//! `wrapkit`, run the result and look at what a user would see.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use tempfile::TempDir;

/// The `wrapkit` binary under test. `CLICOLOR_FORCE` would colour its labels even in the pipes
/// the tests read (`--color auto` honours it, as clap does), so it is removed.
pub fn wrapkit() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wrapkit"));
    cmd.env_remove("CLICOLOR_FORCE");
    cmd
}

/// The workspace's `examples/NAME` directory.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// What a finished process showed.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(cmd: &mut Command) -> Run {
        use std::os::unix::process::ExitStatusExt;
        let out = cmd.output().expect("the command starts");
        Run {
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        self.assert_success();
        self.stdout
    }

    /// Asserts success and returns stderr.
    #[track_caller]
    pub fn ok_stderr(self) -> String {
        self.assert_success();
        self.stderr
    }

    #[track_caller]
    fn assert_success(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "expected success; stderr:\n{}\nstdout:\n{}",
            self.stderr,
            self.stdout
        );
    }

    /// Asserts exit code `code` and returns stderr.
    #[track_caller]
    pub fn fails_with(self, code: i32) -> String {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit {code}; stderr:\n{}\nstdout:\n{}",
            self.stderr,
            self.stdout
        );
        self.stderr
    }
}

/// An app directory under construction, in its own temp dir.
pub struct App {
    dir: Rc<TempDir>,
}

impl App {
    pub fn new() -> App {
        let dir = tempfile::Builder::new()
            .prefix("wk-app-")
            .tempdir()
            .expect("temp dir");
        fs::create_dir(dir.path().join("app")).expect("app dir");
        App { dir: Rc::new(dir) }
    }

    /// The app directory itself.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("app")
    }

    /// A scratch directory beside the app (outside it), for outputs.
    pub fn scratch(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn file(self, rel: &str, contents: impl AsRef<[u8]>) -> App {
        let p = self.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, contents).unwrap();
        self
    }

    pub fn executable(self, rel: &str, contents: &str) -> App {
        let app = self.file(rel, contents);
        fs::set_permissions(app.path().join(rel), fs::Permissions::from_mode(0o755)).unwrap();
        app
    }

    pub fn dir(self, rel: &str) -> App {
        fs::create_dir_all(self.path().join(rel)).unwrap();
        self
    }

    pub fn symlink(self, rel: &str, target: &str) -> App {
        std::os::unix::fs::symlink(target, self.path().join(rel)).unwrap();
        self
    }

    /// Packs with extra flags; panics with wrapkit's stderr on failure.
    #[track_caller]
    pub fn pack(&self, flags: &[&str]) -> Packed {
        let exe = self.scratch().join("packed");
        let run = self.pack_to(&exe, flags);
        assert_eq!(run.code, Some(0), "pack failed:\n{}", run.stderr);
        Packed {
            exe,
            _dir: Rc::clone(&self.dir),
        }
    }

    /// Runs `wrapkit pack` to `out`, whatever happens.
    pub fn pack_to(&self, out: &Path, flags: &[&str]) -> Run {
        Run::of(
            wrapkit()
                .arg("pack")
                .arg(self.path())
                .arg("-o")
                .arg(out)
                .arg("-q")
                .args(flags),
        )
    }
}

/// A packed executable (keeping its app's temp dir alive).
pub struct Packed {
    pub exe: PathBuf,
    _dir: Rc<TempDir>,
}

impl Packed {
    pub fn cmd(&self) -> Command {
        Command::new(&self.exe)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(self.cmd().args(args))
    }

    pub fn bytes(&self) -> Vec<u8> {
        fs::read(&self.exe).unwrap()
    }

    /// Writes `bytes` as an executable beside this one and returns its path.
    pub fn variant(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.exe.with_file_name(name);
        fs::write(&p, bytes).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
}

/// For a test that needs root: true when it may go on. Not root: with
/// `WRAPKIT_TEST_REQUIRE_ROOT` set (CI sets it, and runs as root) the test fails rather than
/// passes without checking anything; without it, it says it was skipped and returns false.
#[track_caller]
pub fn require_root(what: &str) -> bool {
    is_root() || missing(&format!("{what} needs root"))
}

/// For a test whose tool or privilege is missing: fails under `WRAPKIT_TEST_REQUIRE_ROOT`
/// (CI, which installs every tool), else says it was skipped. Returns false.
#[track_caller]
pub fn missing(why: &str) -> bool {
    assert!(
        std::env::var_os("WRAPKIT_TEST_REQUIRE_ROOT").is_none(),
        "{why}, and WRAPKIT_TEST_REQUIRE_ROOT is set: this test must run here"
    );
    eprintln!("skipped: {why}");
    false
}

/// A command run as the unprivileged user `nobody` (65534), through `setpriv`, with a clean
/// environment but for `PATH`. The caller must be root.
pub fn as_nobody(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program)
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    cmd
}

/// A temp dir that `nobody` may enter (and write, when `writable`).
pub fn shared_tempdir(writable: bool) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("wk-shared-")
        .tempdir()
        .expect("temp dir");
    let mode = if writable { 0o777 } else { 0o755 };
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
    dir
}

/// Waits for `child` at most `limit`; kills it and panics if it is still running then (a test
/// of something that must not hang).
#[track_caller]
pub fn wait_bounded(mut child: std::process::Child, limit: std::time::Duration) -> Run {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}: it hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut stdout).unwrap();
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).unwrap();
    }
    Run {
        code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
    }
}

/// Whether the tests run as root (needed for chroot).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `wrapkit pack -q DIR -o OUT`, to add flags or environment to.
pub fn pack_cmd(dir: impl AsRef<Path>, out: impl AsRef<Path>) -> Command {
    let mut cmd = wrapkit();
    cmd.args(["pack", "-q"])
        .arg(dir.as_ref())
        .arg("-o")
        .arg(out.as_ref());
    cmd
}

/// Runs `cmd` with its stderr on a fresh pseudo-terminal (stdout piped, stdin empty), as a
/// user at a terminal would; returns what it wrote there, `\r\n` turned back into `\n`.
/// `None` when the machine has no pseudo-terminals (see [`missing`]).
pub fn with_terminal_stderr(cmd: &mut Command) -> Option<Run> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use std::io::Read;
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).ok()?;
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let terminal = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(terminal)
        .spawn()
        .expect("the command starts");
    // Our copy of the terminal must close, or reading the other end never ends.
    cmd.stderr(std::process::Stdio::null());
    let out = child.wait_with_output().unwrap();
    let mut master = fs::File::from(master);
    let mut stderr = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => stderr.extend_from_slice(&buf[..n]),
            // Linux says EIO once the last terminal end is closed and the data is read.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => break,
            Err(e) => panic!("reading the terminal: {e}"),
        }
    }
    use std::os::unix::process::ExitStatusExt;
    Some(Run {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).replace("\r\n", "\n"),
    })
}

/// Where the zip archive lies in a packed file: in the stub's ELF note (format 2), or at the
/// end of the file (format 1, or a stub that cannot carry a note).
pub fn archive_range(bytes: &[u8]) -> std::ops::Range<usize> {
    let archive = wrapkit_runtime::archive::Archive::open(bytes).expect("a packed file");
    archive.start_pos() as usize..archive.bytes().len()
}

/// The stub a packed file was made from, as `--runtime PACKED` gets it back.
pub fn stub_of(bytes: &[u8]) -> Vec<u8> {
    let archive = wrapkit_runtime::archive::Archive::open(bytes).expect("a packed file");
    match archive.carried() {
        Some(c) => wrapkit_runtime::format::elf::original_stub(bytes, c).expect("as packed"),
        None => bytes[..archive.start_pos() as usize].to_vec(),
    }
}
