//! A small builder for end-to-end tests: write an app directory, pack it with the real
//! `wrapkit`, run the result and look at what a user would see.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use tempfile::TempDir;

/// The `wrapkit` binary under test.
pub fn wrapkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wrapkit"))
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
        assert_eq!(
            self.code,
            Some(0),
            "expected success; stderr:\n{}\nstdout:\n{}",
            self.stderr,
            self.stdout
        );
        self.stdout
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

/// Whether the tests run as root (needed for chroot).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
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
