//! The app directory, at the archive's root: what [`walk`](crate::walk) finds there, filtered
//! by `include`/`exclude`, with symlinks kept as symlinks (or followed, when asked).

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
