//! One file per command; each turns parsed arguments into library calls and prints the
//! results (data to stdout, messages to stderr). This is the only place that prints.

#![allow(clippy::print_stdout)]

mod audit;
mod cache;
mod cat;
mod completions;
mod deploy;
mod extract;
mod info;
mod init;
mod ls;
mod man;
mod pack;
mod unpack;
mod verify;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Pack(args) => pack::pack(*args),
        Command::Ls(args) => ls::ls(args),
        Command::Cat(args) => cat::cat(args),
        Command::Extract(args) => extract::extract(args),
        Command::Info(args) => info::info(args),
        Command::Verify(args) => verify::verify(args),
        Command::Unpack(args) => unpack::unpack(args),
        Command::Cache(args) => cache::cache(args),
        Command::Audit(args) => audit::audit(args),
        Command::Deploy(args) => deploy::deploy(args),
        Command::Init(args) => init::init(args),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => man::man(args),
    }
}
