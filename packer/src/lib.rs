//! `wrapkit`: turns an application directory into one self-contained executable.
//!
//! This crate is the packer: the CLI ([`cli`]) and glue over a few library modules. [`walk`]
//! turns a directory into a sorted list of entries, [`config`] reads `wrapkit.toml`, [`pack`]
//! compresses entries in parallel and writes them through the runtime crate's format writer
//! behind a stub from [`stub`]. The payload format itself belongs to `wrapkit_runtime::format`;
//! nothing here encodes a byte of it.
//!
//! Errors are [`error::PackError`] values carrying the path they concern; they are printed
//! once, in [`main`], as `error:` with `caused by:` and `hint:` lines.

pub mod cli;
mod commands;
pub mod config;
pub mod error;
pub mod inspect;
pub mod pack;
pub mod stub;
pub mod walk;

use std::process::ExitCode;

use clap::Parser;
use wrapkit_runtime::format::path::printable;

/// Exit code for a failed command (usage errors exit 2, through clap).
pub const EXIT_FAILURE: u8 = 1;

/// Runs the CLI and turns errors into one report and an exit code.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Prints `err` once: `error:`, `caused by:` lines, a `hint:`. Every line is escaped, since
/// paths, names and targets in it may come from an archive or a hostile directory and must
/// not rewrite the terminal or forge a line of their own.
fn report(err: &anyhow::Error) {
    eprintln!("error: {}", printable(&err.to_string()));
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {}", printable(&cause.to_string()));
    }
    if let Some(hint) = err
        .downcast_ref::<error::PackError>()
        .and_then(error::PackError::hint)
    {
        eprintln!("hint: {}", printable(&hint));
    }
}
