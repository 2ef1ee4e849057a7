//! `wrapkit verify APP`: every byte checked; the first bad region named.

use std::io::Write;
use std::process::ExitCode;

use wrapkit_runtime::verify;

use crate::cli::VerifyArgs;
use crate::error::PackError;
use crate::inspect;

pub(crate) fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let bytes = inspect::map(&args.app)?;
    let verified = verify::verify(bytes).map_err(|source| PackError::Verify {
        path: args.app.clone(),
        source,
    })?;
    writeln!(
        std::io::stdout().lock(),
        "ok: {} entries ({} files, {} bytes) check out; blake3 {}",
        verified.entries,
        verified.files,
        verified.bytes,
        verified.digest
    )?;
    Ok(ExitCode::SUCCESS)
}
