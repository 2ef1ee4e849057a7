//! `wrapkit extract APP DIR`: validate everything, then write it out (see
//! `wrapkit_runtime::extract` for what is and is not written).

use std::path::Path;
use std::process::ExitCode;

use wrapkit_runtime::extract::{self, ExtractOptions, ExtractStats};

use crate::cli::ExtractArgs;
use crate::error::PackError;
use crate::inspect::{self, human_bytes};

pub(crate) fn extract(args: ExtractArgs) -> anyhow::Result<ExitCode> {
    let stats = extract_to(&args.app, &args.dir)?;
    eprintln!(
        "extracted {} files, {} directories, {} symlinks ({}) into {}",
        stats.files,
        stats.dirs,
        stats.symlinks,
        human_bytes(stats.bytes),
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Shared with `unpack`: creates `dir` if it does not exist, then extracts into it.
pub(crate) fn extract_to(app: &Path, dir: &Path) -> Result<ExtractStats, PackError> {
    let opened = inspect::open(app)?;
    let validated = opened.validate()?;
    let created = match std::fs::create_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(source) => {
            return Err(PackError::Write {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let result = extract::extract(&opened.archive, &validated, dir, &ExtractOptions::default());
    if result.is_err() && created {
        let _ = std::fs::remove_dir_all(dir);
    }
    result.map_err(|source| PackError::Extract {
        path: dir.to_path_buf(),
        source,
    })
}
