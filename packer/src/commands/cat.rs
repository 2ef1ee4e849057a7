//! `wrapkit cat APP PATH`: one file's contents to stdout, symlinks followed inside the archive.
//!
//! Like every command that reads an archive, it validates it first. The contents are streamed
//! (bounded memory whatever the entry declares), checked against the declared size and CRC as
//! they go; a reader that closes the pipe early (`| head`) ends it quietly, with success.

use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use wrapkit_runtime::format::{EntryKind, method};

use crate::cli::CatArgs;
use crate::error::PackError;
use crate::inspect;

pub(crate) fn cat(args: CatArgs) -> anyhow::Result<ExitCode> {
    let opened = inspect::open(&args.app)?;
    opened.validate()?;
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
    let raw = opened
        .archive
        .raw_data(&entry)
        .map_err(|s| opened.packed_error(s))?;
    let mut out = std::io::stdout().lock();
    let copied = method::decompress_to(
        entry.name,
        entry.method,
        raw,
        entry.size,
        entry.crc32,
        &mut out,
    )
    .and_then(|()| out.flush().map_err(method::CopyError::Write));
    match copied {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(method::CopyError::Write(e)) if e.kind() == ErrorKind::BrokenPipe => {
            Ok(ExitCode::SUCCESS)
        }
        Err(method::CopyError::Write(e)) => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        Err(method::CopyError::Format(e)) => Err(opened.packed_error(e).into()),
    }
}
