//! The app directory, at the archive's root: what [`walk`](crate::walk) finds there, filtered
//! by `include`/`exclude`, with symlinks kept as symlinks (or followed, when asked); or one
//! script given by itself.

use std::path::Path;

use crate::error::PackError;
use crate::plan::{Plan, Planned, Source};
use crate::walk::{self, Filter, Notice};

/// Adds every entry of the app directory `root` (canonical) to `plan`, and records what the
/// filters left out. Returns what is worth a warning.
pub fn add(
    plan: &mut Plan,
    root: &Path,
    filter: &Filter,
    follow_symlinks: bool,
) -> Result<Vec<Notice>, PackError> {
    let walked = walk::walk(root, filter, follow_symlinks)?;
    plan.excluded.extend(walked.excluded);
    for e in walked.entries {
        plan.add(Planned {
            name: e.name,
            kind: e.kind,
            mode: e.mode,
            size: e.size,
            target: e.target,
            source: if e.kind == wrapkit_runtime::format::EntryKind::File {
                Source::Disk(e.source)
            } else {
                Source::None
            },
        })?;
    }
    Ok(walked.notices)
}

/// Adds the one file `path` at its file name: `wrapkit pack script.lua`.
pub fn add_file(plan: &mut Plan, path: &Path) -> Result<(), PackError> {
    let meta = std::fs::metadata(path).map_err(|source| PackError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| PackError::NonUtf8Name {
            path: path.to_path_buf(),
        })?;
    plan.add(Planned {
        name: name.to_owned(),
        kind: wrapkit_runtime::format::EntryKind::File,
        mode: std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
        size: meta.len(),
        target: None,
        source: Source::Disk(path.to_path_buf()),
    })
}
