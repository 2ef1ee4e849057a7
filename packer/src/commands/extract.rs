//! `wrapkit extract APP DIR`: validate everything, then write it out (see
//! `wrapkit_runtime::extract` for what is and is not written).

use std::path::Path;
use std::process::ExitCode;

use wrapkit_runtime::beneath::{self, Dir};
use wrapkit_runtime::extract::{self, ExtractOptions, ExtractStats};

use crate::cli::ExtractArgs;
use crate::error::PackError;
use crate::inspect::{self, human_bytes};
use crate::messages::note;

pub(crate) fn extract(args: ExtractArgs) -> anyhow::Result<ExitCode> {
    let (_, stats) = extract_to(&args.app, &args.dir)?;
    note!(
        "extracted {} files, {} directories, {} symlinks ({}) into {}",
        stats.files,
        stats.dirs,
        stats.symlinks,
        human_bytes(stats.bytes),
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Shared with `unpack`: creates `dir` if it does not exist (it may not be a symlink, however
/// written), then extracts into it. Returns the open target with what was extracted.
pub(crate) fn extract_to(app: &Path, dir: &Path) -> Result<(Dir, ExtractStats), PackError> {
    let opened = inspect::open(app)?;
    let validated = opened.validate()?;
    let bad_target = || PackError::Extract {
        path: dir.to_path_buf(),
        source: extract::ExtractError::BadTarget {
            path: dir.to_path_buf(),
        },
    };
    let (target, created) = match Dir::open_or_create(dir, 0o755) {
        Ok(opened) => opened,
        Err(e) if beneath::is_symlink_in_the_way(&e) => return Err(bad_target()),
        Err(source) => {
            return Err(PackError::Write {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    if !created && !target.entries().map_err(|_| bad_target())?.is_empty() {
        return Err(bad_target());
    }
    let opts = ExtractOptions::default();
    let result = extract::extract_into(&opened.archive, &validated, &target, dir, &opts);
    if result.is_err() && created {
        // Only what we made: the directory's contents, through the handle, then the directory.
        for name in target.entries().unwrap_or_default() {
            if let Some(name) = name.to_str() {
                let _ = target.remove_all(name);
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    let stats = result.map_err(|source| PackError::Extract {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok((target, stats))
}
