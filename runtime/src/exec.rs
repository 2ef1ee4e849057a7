//! Exec mode: materialise the archive in the cache ([`crate::cache`]) and `execve` the program
//! the manifest names, so it runs as if started directly: same PID, signals, stdin/stdout/stderr
//! and exit status (a death by signal N shows to the shell as 128+N, because it *is* one).
//!
//! The program gets `argv[0]` = its path in the tree, the manifest's arguments with `{root}`
//! and `{exe}` expanded, then the user's arguments unchanged (bytes, not UTF-8). Its environment
//! is ours plus the manifest's `env` (expanded the same way), plus `WRAPKIT_EXE` (the packed file)
//! and `WRAPKIT_ROOT` (the tree), which always override inherited values: the runtime itself
//! reads no environment variable but `WRAPKIT_CACHE_DIR`, `CACHE_DIRECTORY`, `XDG_CACHE_HOME`, `HOME` (where the
//! cache is) and `WRAPKIT_DEBUG` (tracing), so nothing inherited can redirect what runs.

// The runtime's `unsafe` is confined to named modules (lib.rs lists them); this is one.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::archive::Archive;
use crate::cache::{Cache, CacheError, Location, Outcome, Trace};
use crate::exit;
use crate::format::path;

/// Set in the program's environment: the packed executable.
pub const ENV_EXE: &str = "WRAPKIT_EXE";
/// Set in the program's environment: the materialised tree.
pub const ENV_ROOT: &str = "WRAPKIT_ROOT";

/// What the manifest asks to run.
#[derive(Debug, Clone)]
pub struct Program {
    /// `argv[0]` is an archive path; the rest may hold `{root}` and `{exe}`.
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// `argv[0]` instead of the program's path (may hold `{root}` and `{exe}`).
    pub argv0: Option<String>,
}

/// Why the program could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("the manifest names no program to run")]
    NoProgram,
    #[error("the manifest's program `{0}` is not a valid archive path")]
    BadProgram(String),
    #[error("cannot run {}: {source}", path.display())]
    NotFound {
        path: PathBuf,
        /// Whether the program file itself exists (then its interpreter does not).
        exists: bool,
        #[source]
        source: io::Error,
    },
    #[error("cannot run {}: {source}", path.display())]
    CannotExecute {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl crate::report::Hinted for ExecError {
    fn hint(&self) -> Option<String> {
        match self {
            ExecError::Cache(e) => e.hint(),
            _ => self.hint_text().map(str::to_owned),
        }
    }
}

impl ExecError {
    fn hint_text(&self) -> Option<&'static str> {
        match self {
            ExecError::Cache(_) => None,
            ExecError::NoProgram | ExecError::BadProgram(_) => {
                Some("pack the app again with `exec = [\"path/in/app\", ...]` in wrapkit.toml")
            }
            ExecError::NotFound { exists: true, .. } => Some(
                "the program exists, so the interpreter it names is missing on this machine (its `#!` line, or the ELF loader of a dynamically linked program): bundle it, or link the program statically",
            ),
            ExecError::NotFound { .. } => {
                Some("the manifest names a program the archive does not hold; pack the app again")
            }
            ExecError::CannotExecute { .. } => Some(
                "the program must be an executable for this machine (or a script with a `#!` line), with its execute bit set when packed",
            ),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            ExecError::Cache(e) => e.exit_code(),
            ExecError::NoProgram | ExecError::BadProgram(_) => exit::BAD_PAYLOAD,
            ExecError::NotFound { .. } => exit::NOT_FOUND,
            ExecError::CannotExecute { .. } => exit::CANNOT_EXECUTE,
        }
    }
}

/// Materialises `archive` and replaces this process with the program. Returns only on failure.
/// `exe` is the packed executable; `args` the user's arguments (without `argv[0]`).
pub fn run(
    archive: &Archive<'_>,
    exe: &Path,
    program: &Program,
    args: impl IntoIterator<Item = OsString>,
) -> Result<Infallible, ExecError> {
    let trace = Trace::from_env();
    let first = program.argv.first().ok_or(ExecError::NoProgram)?;
    if path::validate(first).is_err() {
        return Err(ExecError::BadProgram(first.clone()));
    }
    let location = Location::from_env()?;
    trace.say(|| format!("cache {} ({:?})", location.path.display(), location.origin));
    let cache = Cache::open(&location)?;
    let started = std::time::Instant::now();
    let tree = cache.materialise(archive, exe, &trace)?;
    if let Outcome::Filled { stats, .. } = &tree.outcome {
        say_slow_first_start(started.elapsed(), stats, cache.root());
    }
    trace.say(|| match &tree.outcome {
        Outcome::Warm => "warm start".into(),
        Outcome::FilledByOther => "filled by another process".into(),
        Outcome::Filled { repaired: None, .. } => "cold start: filled".into(),
        Outcome::Filled {
            repaired: Some(why),
            ..
        } => format!("repaired ({why})"),
    });

    let mut invocation = Invocation::new(program, &tree.root, exe, args);
    // A program in a layer runs from the layer's own tree, by its real path: what it finds
    // through /proc/self/exe and argv[0] (Python's sys.executable, Node's execPath) is then
    // the same file, with the same libraries, as what was started.
    if let Some(real) = tree.layers.iter().find_map(|(prefix, path)| {
        let rel = first.strip_prefix(prefix.as_str())?.strip_prefix('/')?;
        Some(path.join(rel))
    }) {
        invocation.argv[0] = real.clone().into_os_string();
        invocation.path = real;
    }
    if let Some(argv0) = &program.argv0 {
        let (root, exe) = (tree.root.to_string_lossy(), exe.to_string_lossy());
        invocation.argv[0] = expand(argv0, &root, &exe).into();
    }
    trace.say(|| format!("exec {invocation:?}"));
    let source = invocation.exec();
    let path = invocation.path;
    Err(match source.kind() {
        io::ErrorKind::NotFound => ExecError::NotFound {
            exists: std::fs::symlink_metadata(&path).is_ok(),
            path,
            source,
        },
        io::ErrorKind::PermissionDenied if on_noexec(&tree.root) => {
            ExecError::Cache(CacheError::NoExec {
                path: cache.root().to_path_buf(),
            })
        }
        _ => ExecError::CannotExecute { path, source },
    })
}

/// A first start that took a while says why, once, to a person watching (stderr a terminal):
/// never in a pipe or a service's log, where it would be noise in the program's output.
fn say_slow_first_start(
    took: std::time::Duration,
    stats: &crate::extract::ExtractStats,
    cache: &Path,
) {
    use std::io::IsTerminal;
    if took >= std::time::Duration::from_secs(1) && std::io::stderr().is_terminal() {
        eprintln!(
            "wrapkit: first start: unpacked {} files ({} MB) into {} in {:.1} s; later starts reuse them",
            stats.files,
            stats.bytes.div_ceil(1_000_000),
            cache.display(),
            took.as_secs_f64()
        );
    }
}

/// What to `execve`: the program's path, its whole `argv`, and the variables to set on top of
/// our environment.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub path: PathBuf,
    pub argv: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
}

impl Invocation {
    /// Placeholders expanded; `WRAPKIT_EXE` and `WRAPKIT_ROOT` last, so they win.
    pub fn new(
        program: &Program,
        root: &Path,
        exe: &Path,
        args: impl IntoIterator<Item = OsString>,
    ) -> Invocation {
        let root_s = root.to_string_lossy();
        let exe_s = exe.to_string_lossy();
        let path = root.join(&program.argv[0]);
        let mut argv = vec![path.clone().into_os_string()];
        argv.extend(
            program.argv[1..]
                .iter()
                .map(|a| OsString::from(expand(a, &root_s, &exe_s))),
        );
        argv.extend(args);
        let mut env: Vec<(OsString, OsString)> = program
            .env
            .iter()
            .filter(|(k, _)| k.as_str() != ENV_EXE && k.as_str() != ENV_ROOT)
            .map(|(k, v)| (k.into(), expand(v, &root_s, &exe_s).into()))
            .collect();
        env.push((ENV_EXE.into(), exe.into()));
        env.push((ENV_ROOT.into(), root.into()));
        Invocation { path, argv, env }
    }

    /// The full environment the program gets: ours, with [`Invocation::env`] set on top.
    pub fn environment(&self) -> Vec<(OsString, OsString)> {
        let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| !self.env.iter().any(|(o, _)| o == k))
            .collect();
        vars.extend(self.env.iter().cloned());
        vars
    }

    /// Replaces this process with the program; returns only the error if that fails.
    ///
    /// A plain `execve`: no `PATH` search and no `/bin/sh` fallback for files without a `#!`
    /// line (which `execvp`, and so `std::process::Command`, would do). The signal mask and
    /// ignored signals (`nohup`, an ignored `SIGPIPE`) are inherited exactly as they came to
    /// us: the stub does not go through Rust's `lang_start`, which would ignore `SIGPIPE`.
    pub fn exec(&self) -> io::Error {
        let strings = (|| {
            let path = CString::new(self.path.as_os_str().as_bytes()).ok()?;
            let argv = self
                .argv
                .iter()
                .map(|a| CString::new(a.as_bytes()).ok())
                .collect::<Option<Vec<CString>>>()?;
            let envp = self
                .environment()
                .iter()
                .map(|(k, v)| CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).ok())
                .collect::<Option<Vec<CString>>>()?;
            Some((path, argv, envp))
        })();
        let Some((path, argv, envp)) = strings else {
            return io::Error::new(
                io::ErrorKind::InvalidInput,
                "an argument or environment variable contains a NUL byte",
            );
        };
        let null_terminated = |v: &[CString]| -> Vec<*const libc::c_char> {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        let (argv_ptrs, envp_ptrs) = (null_terminated(&argv), null_terminated(&envp));
        // SAFETY: `path` and every string the two pointer arrays point to are NUL-terminated
        // and alive until execve returns (it returns only on failure); both arrays end in NULL.
        unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
        io::Error::last_os_error()
    }
}

/// Replaces `{root}` and `{exe}` in one pass (an expanded value is never expanded again).
pub fn expand(template: &str, root: &str, exe: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(r) = tail.strip_prefix("{root}") {
            out.push_str(root);
            rest = r;
        } else if let Some(r) = tail.strip_prefix("{exe}") {
            out.push_str(exe);
            rest = r;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

fn on_noexec(path: &Path) -> bool {
    crate::beneath::Dir::open(path)
        .and_then(|d| d.is_noexec())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_expand_once() {
        assert_eq!(
            expand("{root}/data:{exe}:{other}{", "/r", "/e"),
            "/r/data:/e:{other}{"
        );
        assert_eq!(expand("{root}", "/{exe}", "/e"), "/{exe}");
        assert_eq!(expand("plain", "/r", "/e"), "plain");
    }

    #[test]
    fn the_invocation_carries_our_variables_last() {
        let program = Program {
            argv: vec!["bin/app".into(), "--data={root}/d".into()],
            env: BTreeMap::from([
                ("APP_HOME".into(), "{root}".into()),
                (ENV_ROOT.into(), "/spoofed".into()),
            ]),
            argv0: None,
        };
        let inv = Invocation::new(
            &program,
            Path::new("/c/t"),
            Path::new("/bin/x"),
            [OsString::from("user")],
        );
        assert_eq!(inv.path, Path::new("/c/t/bin/app"));
        assert_eq!(inv.argv, ["/c/t/bin/app", "--data=/c/t/d", "user"]);
        let env: BTreeMap<_, _> = inv.environment().into_iter().collect();
        assert_eq!(env[std::ffi::OsStr::new("APP_HOME")], "/c/t");
        assert_eq!(env[std::ffi::OsStr::new(ENV_ROOT)], "/c/t");
        assert_eq!(env[std::ffi::OsStr::new(ENV_EXE)], "/bin/x");
    }
}
