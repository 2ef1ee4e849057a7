//! `wrapkit verify APP [--json]`: every byte checked; the first bad region named (as an error,
//! on stderr, with `--json` too: stdout then stays empty).

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;
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
    let mut out = std::io::stdout().lock();
    if args.json {
        // docs/cli.md, "JSON output".
        #[derive(Serialize)]
        struct Verified {
            file: String,
            entries: u64,
            files: u64,
            bytes: u64,
            digest: String,
        }
        let report = Verified {
            file: args.app.display().to_string(),
            entries: verified.entries,
            files: verified.files,
            bytes: verified.bytes,
            digest: format!("blake3:{}", verified.digest),
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "ok: {} entries ({} files, {} bytes) check out; blake3 {}",
        verified.entries, verified.files, verified.bytes, verified.digest
    )?;
    Ok(ExitCode::SUCCESS)
}
