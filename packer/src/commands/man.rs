//! `wrapkit man [COMMAND…]`: the roff man page of wrapkit (`wrapkit(1)`) or of one command
//! (`wrapkit-pack(1)`, `wrapkit-cache-gc(1)`), generated from the clap definition: the same
//! `///` help text as `--help`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};

pub(crate) fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    // Building names each subcommand for its page (`wrapkit-pack`) and its synopsis.
    command.build();
    let mut page = &command;
    for name in &args.command {
        let Some(sub) = page.find_subcommand(name) else {
            let names: Vec<&str> = page
                .get_subcommands()
                .map(clap::Command::get_name)
                .filter(|n| *n != "help")
                .collect();
            bail!(
                "`{}` has no command `{name}`; its commands are {}",
                page.get_display_name().unwrap_or(page.get_name()),
                names.join(", ")
            );
        };
        page = sub;
    }
    let mut roff = Vec::new();
    // Every page names the wrapkit it documents (a subcommand has no version of its own).
    clap_mangen::Man::new(page.clone())
        .source(format!("wrapkit {}", crate::cli::VERSION))
        .render(&mut roff)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&roff)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
