//! `wrapkit cat APP PATH`: one file's contents to stdout, symlinks followed inside the archive.

use std::io::Write;
use std::process::ExitCode;

use wrapkit_runtime::format::EntryKind;

use crate::cli::CatArgs;
use crate::error::PackError;
use crate::inspect;

pub(crate) fn cat(args: CatArgs) -> anyhow::Result<ExitCode> {
    let opened = inspect::open(&args.app)?;
    let name = args.path.trim_start_matches("./").trim_end_matches('/');
    let entry = opened
        .archive
        .resolve(name)
        .map_err(|s| opened.packed_error(s))?
        .ok_or_else(|| PackError::NoSuchEntry {
            path: args.app.clone(),
            entry: args.path.clone(),
        })?;
    if entry.kind == EntryKind::Dir {
        return Err(PackError::IsADirectory {
            path: args.app,
            entry: args.path,
        }
        .into());
    }
    let contents = opened
        .archive
        .contents(&entry, true)
        .map_err(|s| opened.packed_error(s))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&contents)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
