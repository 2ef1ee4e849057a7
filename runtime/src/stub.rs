//! The stub's `main`: find our own file, open the payload, run what the manifest says.
//!
//! Start-up does O(1) work before the app runs: one `open`, one `mmap`, the end records, the
//! trailer, the index header and the manifest. Errors are printed once, here, as the block of
//! [`crate::report`] (`error:` naming the executable, `caused by:` lines, a `hint:`), the same
//! block the `wrapkit` CLI prints; each kind has its own exit code ([`crate::exit`]).

use std::os::unix::ffi::OsStringExt;

use crate::archive::Archive;
use crate::exit;
use crate::format::FormatError;
use crate::format::manifest::Run;
use crate::report::{self, Hinted};
use crate::{exec, lua, mapping, selfcare, selfexe};

/// A failure of the runtime itself (never of the app): the error, the executable it concerns
/// (when known), its hint and exit code.
struct Failure {
    exe: Option<String>,
    error: Box<dyn std::error::Error>,
    hint: Option<String>,
    code: u8,
}

impl Failure {
    fn new<E: Hinted + 'static>(exe: Option<&str>, error: E, code: u8) -> Self {
        Failure {
            exe: exe.map(str::to_owned),
            hint: error.hint(),
            error: Box::new(error),
            code,
        }
    }

    fn format(exe: &str, err: FormatError) -> Self {
        let code = err.exit_code();
        Failure::new(Some(exe), err, code)
    }
}

/// An I/O failure of the runtime itself, with what it was doing.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct SelfError {
    what: String,
    hint: Option<&'static str>,
    #[source]
    source: std::io::Error,
}

impl Hinted for SelfError {
    fn hint(&self) -> Option<String> {
        self.hint.map(str::to_owned)
    }
}

/// Runs the packed app and returns the process exit code.
pub fn main() -> u8 {
    match run() {
        Ok(code) => code,
        Err(f) => {
            let block = report::render(f.exe.as_deref(), f.error.as_ref(), f.hint.as_deref());
            eprint!("{block}");
            f.code
        }
    }
}

fn run() -> Result<u8, Failure> {
    let me = selfexe::open().map_err(|source| {
        let what = "cannot open the running executable".to_owned();
        let hint = Some("run the file directly, or mount /proc");
        Failure::new(None, SelfError { what, hint, source }, exit::IO)
    })?;
    let exe = me.path.to_string_lossy().into_owned();
    let bytes = mapping::map_for_process(&me.file).map_err(|source| {
        let what = "cannot map the file".to_owned();
        Failure::new(
            Some(&exe),
            SelfError {
                what,
                hint: None,
                source,
            },
            exit::IO,
        )
    })?;
    if let Some(command) = selfcare::requested() {
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        let archive = Archive::open(bytes).ok();
        return Ok(selfcare::run(
            &command,
            &me.path,
            bytes,
            archive.as_ref(),
            &args,
        ));
    }
    let archive = Archive::open(bytes).map_err(|e| Failure::format(&exe, e))?;
    let manifest = archive.manifest().map_err(|e| Failure::format(&exe, e))?;
    let archive: &'static Archive<'static> = Box::leak(Box::new(archive));

    let mut argv = std::env::args_os().map(OsStringExt::into_vec);
    let argv0 = argv.next().map_or_else(|| exe.clone(), lossy);
    let args = argv.map(lossy).collect();
    match manifest.run {
        Run::Lua { entry } => {
            let app = lua::App {
                archive,
                root: exe.clone(),
                entry,
                name: manifest.name,
                version: manifest.version,
                argv0,
                args,
            };
            lua::run(app).map_err(|e| Failure {
                exe: Some(exe.clone()),
                error: format!("the Lua host failed: {e}").into(),
                hint: None,
                code: exit::LUA_ERROR,
            })
        }
        Run::Exec { argv, env, argv0 } => {
            let program = exec::Program { argv, env, argv0 };
            let Err(e) = exec::run(archive, &me.path, &program, std::env::args_os().skip(1));
            let code = e.exit_code();
            Err(Failure::new(Some(&exe), e, code))
        }
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
