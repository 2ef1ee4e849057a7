//! Recipes: each adds entries to a [`Plan`](crate::plan::Plan) and may set its run spec; none
//! writes anything. [`app`] is the app directory itself, at the archive's root; [`program`] a
//! native program and its library closure as a layer; [`node`], [`tcl`] and [`python`] an
//! interpreter from the build machine (a layer made by [`program`], plus what the interpreter
//! needs beside it) running a script of the app; [`python`] also the stdlib and what the app
//! needs to run isolated.

pub mod app;
pub mod node;
pub mod program;
pub mod pyproject;
pub mod python;
pub mod tcl;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::PackError;

/// How an interpreter recipe's app starts: the run spec's argv (the layer's interpreter, the
/// script under `{root}`) and the variables the interpreter needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The interpreter's `argv[0]`, when not its own path (`{exe}` for Tcl).
    pub argv0: Option<String>,
}

/// The interpreter's executable: `given`, else `name` on `PATH`; symlinks resolved (so
/// `/usr/bin/tclsh -> /etc/alternatives/tclsh -> tclsh8.6` bundles `tclsh8.6`).
pub(crate) fn host_binary(
    given: Option<&Path>,
    name: &'static str,
    flag: &'static str,
) -> Result<PathBuf, PackError> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
            .ok_or(PackError::InterpreterNotFound { name, flag })?,
    };
    if path.is_dir() {
        return Err(PackError::BadInterpreter {
            path,
            flag,
            reason: "a directory".into(),
        });
    }
    std::fs::canonicalize(&path).map_err(|source| PackError::Read { path, source })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `path` starts like an ELF file (a shim script does not).
pub(crate) fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Runs the build machine's interpreter `binary` with `args` (and `stdin` as its standard
/// input) and returns what it printed: how an interpreter says where its own files are.
pub(crate) fn ask(
    binary: &Path,
    args: &[&str],
    stdin: &str,
    flag: &'static str,
) -> Result<String, PackError> {
    use std::io::Write;
    use std::process::Stdio;
    let read_err = |source| PackError::Read {
        path: binary.to_path_buf(),
        source,
    };
    let mut child = Command::new(binary)
        .args(args)
        .env_remove("TCL_LIBRARY")
        .env_remove("TCLLIBPATH")
        .env_remove("NODE_OPTIONS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(read_err)?;
    let mut input = child.stdin.take().expect("piped");
    // A small script; the interpreter reads it all before it prints anything.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let out = child.wait_with_output().map_err(read_err)?;
    if !out.status.success() {
        return Err(PackError::BadInterpreter {
            path: binary.to_path_buf(),
            flag,
            reason: format!(
                "asking it where its files are failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    String::from_utf8(out.stdout).map_err(|_| PackError::BadInterpreter {
        path: binary.to_path_buf(),
        flag,
        reason: "it names its files in bytes that are not UTF-8".into(),
    })
}
