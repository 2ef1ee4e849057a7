//! `wrapkit completions SHELL`: a completion script generated from the same clap definition
//! that parses the command line, so the two cannot drift apart.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

pub(crate) fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    // clap_complete panics on a failed write: generate into memory, then write (and report a
    // closed pipe like every other command).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "wrapkit", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
