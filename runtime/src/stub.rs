//! The stub's `main`: find our own file, open the payload, run what the manifest says.
//!
//! Start-up does O(1) work before the app runs: one `open`, one `mmap`, the end records, the
//! trailer, the index header and the manifest. Errors are printed once, here, as one `error:`
//! line naming the executable, then a `hint:`; each kind has its own exit code ([`crate::exit`]).

use std::os::unix::ffi::OsStringExt;

use crate::archive::Archive;
use crate::exit;
use crate::format::FormatError;
use crate::format::manifest::Run;
use crate::{cache, exec, lua, mapping, selfexe};

/// A failure of the runtime itself (never of the app).
struct Failure {
    message: String,
    hint: Option<&'static str>,
    code: u8,
}

impl Failure {
    fn format(exe: &str, err: FormatError) -> Self {
        let (hint, code) = match err {
            FormatError::Stripped { .. } => (
                "install the packed file as it came from `wrapkit pack`, and tell the packaging tool not to strip it (dh_strip --exclude=FILE, or `%global __os_install_post %{nil}` for RPM)",
                exit::BAD_PAYLOAD,
            ),
            FormatError::NoPayload { .. } => (
                "the file was cut short or changed after packing; copy it again, or pack the app again",
                exit::BAD_PAYLOAD,
            ),
            FormatError::UnsupportedVersion { .. } | FormatError::Manifest(_) => (
                "this executable was packed by a newer wrapkit; pack it again with this version, or use a newer runtime",
                exit::UNSUPPORTED,
            ),
            _ => (
                "the file is corrupt; `wrapkit verify` shows where. Pack the app again",
                exit::BAD_PAYLOAD,
            ),
        };
        let hint = Some(hint);
        Failure {
            message: format!("{exe}: {err}"),
            hint,
            code,
        }
    }
}

/// Runs the packed app and returns the process exit code.
pub fn main() -> u8 {
    match run() {
        Ok(code) => code,
        Err(f) => {
            eprintln!("error: {}", f.message);
            if let Some(hint) = f.hint {
                eprintln!("hint: {hint}");
            }
            f.code
        }
    }
}

fn run() -> Result<u8, Failure> {
    let me = selfexe::open().map_err(|e| Failure {
        message: format!("cannot open the running executable: {e}"),
        hint: Some("run the file directly, or mount /proc"),
        code: exit::IO,
    })?;
    let exe = me.path.to_string_lossy().into_owned();
    let bytes = mapping::map_for_process(&me.file).map_err(|e| Failure {
        message: format!("{exe}: cannot map the file: {e}"),
        hint: None,
        code: exit::IO,
    })?;
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
                message: format!("{exe}: the Lua host failed: {e}"),
                hint: None,
                code: exit::LUA_ERROR,
            })
        }
        Run::Exec { argv, env } => {
            let program = exec::Program { argv, env };
            let Err(e) = exec::run(archive, &me.path, &program, std::env::args_os().skip(1));
            Err(Failure {
                message: format!("{exe}: {}", cache::chain(&e)),
                hint: e.hint(),
                code: e.exit_code(),
            })
        }
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
