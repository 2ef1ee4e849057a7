//! One file per command; each turns parsed arguments into library calls and prints the
//! results (data to stdout, messages to stderr).

mod pack;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Pack(args) => pack::pack(args),
    }
}
