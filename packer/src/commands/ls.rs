//! `wrapkit ls APP [--long | --json]`. Names and targets are escaped for the terminal
//! ([`printable`]); `--json` keeps them exact (JSON escapes control characters itself).

use std::io::Write;
use std::process::ExitCode;

use wrapkit_runtime::format::EntryKind;
use wrapkit_runtime::format::method;
use wrapkit_runtime::format::path::printable;

use crate::cli::LsArgs;
use crate::inspect::{self, EntryInfo, mode_string};

pub(crate) fn ls(args: LsArgs) -> anyhow::Result<ExitCode> {
    let opened = inspect::open(&args.app)?;
    let validated = opened.validate()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let infos = validated
            .entries
            .iter()
            .map(|e| EntryInfo::of(&opened, e))
            .collect::<Result<Vec<_>, _>>()?;
        serde_json::to_writer_pretty(&mut out, &infos)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    for e in &validated.entries {
        let suffix = if e.kind == EntryKind::Dir { "/" } else { "" };
        if args.long {
            let link = match e.kind {
                EntryKind::Symlink => format!(" -> {}", printable(&opened.link_target(e)?)),
                _ => String::new(),
            };
            writeln!(
                out,
                "{} {:>10} {:>10} {:<7} {}{suffix}{link}",
                mode_string(e.kind, e.mode),
                e.size,
                e.compressed_size,
                method::name(e.method),
                printable(e.name)
            )?;
        } else {
            writeln!(out, "{}{suffix}", printable(e.name))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
