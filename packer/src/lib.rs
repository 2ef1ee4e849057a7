//! `wrapkit`: turns an application directory into one self-contained executable.
//!
//! This crate is the packer: the CLI ([`cli`]) and glue over a few library modules. Packing is
//! a plan, then a write: [`config`] reads `wrapkit.toml` and `commands::pack` merges it with the
//! flags into [`pack::PackOptions`]; recipes ([`recipe`]; today the app directory, through
//! [`walk`]) fill a [`plan::Plan`] with entries and one run spec; [`write`] compresses the
//! plan's entries in parallel and writes them through the runtime crate's format writer behind
//! a stub from [`stub`]. The payload format itself belongs to `wrapkit_runtime::format`; nothing
//! here encodes a byte of it.
//!
//! Errors are [`error::PackError`] values carrying the path they concern; they are printed
//! once, in [`main`], as `error:` with `caused by:` and `hint:` lines; everything else a command
//! says on stderr goes through `messages`, which `-q`, `-v` and `--color` govern.

pub mod cli;
mod commands;
pub mod config;
pub mod deploy;
pub mod elf;
pub mod error;
pub mod inspect;
mod messages;
pub mod pack;
pub mod plan;
pub mod recipe;
pub mod stub;
pub mod walk;
pub mod write;

use std::process::ExitCode;

/// Exit code for a failed command (usage errors exit 2, through clap).
pub const EXIT_FAILURE: u8 = 1;

/// Runs the CLI and turns errors into one report and an exit code.
pub fn main() -> ExitCode {
    let cli = cli::parse();
    messages::init(cli.global.quiet, cli.global.verbose > 0, cli.global.color);
    match commands::run(cli) {
        Ok(code) => code,
        // The reader went away (`wrapkit ls APP | head`): it has what it wanted, as with
        // ripgrep; nothing to report.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err);
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().map(std::io::Error::kind) == broken
            || e.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == broken
    })
}

/// Prints the error block the stub prints too (`wrapkit_runtime::report`): the error, its
/// causes, and the hint of the first error in the chain whose type has one.
fn report(err: &anyhow::Error) {
    use wrapkit_runtime::report::{self, Hinted};
    let hint = err.chain().find_map(|e| {
        if let Some(e) = e.downcast_ref::<error::PackError>() {
            e.hint()
        } else if let Some(e) = e.downcast_ref::<wrapkit_runtime::cache::CacheError>() {
            e.hint()
        } else if let Some(e) = e.downcast_ref::<wrapkit_runtime::format::FormatError>() {
            e.hint()
        } else {
            None
        }
    });
    eprint!(
        "{}",
        report::block_styled(
            err.chain().map(|e| e.to_string()),
            hint.as_deref(),
            messages::style()
        )
    );
}
