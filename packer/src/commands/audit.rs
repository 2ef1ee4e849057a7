//! `wrapkit audit APP [--json]`: what the programs and libraries in a packed executable need
//! and where each need is met (see `crate::elf::audit`). Exits 1, with an error block after the
//! report, when a need is met neither in the archive nor by glibc.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::AuditArgs;
use crate::elf::audit::{self, Met};
use crate::error::PackError;
use crate::inspect;

pub(crate) fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let opened = inspect::open(&args.app)?;
    let validated = opened.validate()?;
    let layers = opened
        .archive
        .manifest()
        .map_err(|s| opened.packed_error(s))?
        .layers;
    let report = audit::audit(&opened.archive, &validated.entries, &layers)
        .map_err(|s| opened.packed_error(s))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        for f in &report.files {
            if f.is_static {
                writeln!(out, "{}: static", f.name)?;
                continue;
            }
            let mut facts = vec!["dynamically linked".to_owned()];
            if let Some(floor) = &f.glibc_floor {
                facts.push(format!("glibc floor {floor}"));
            }
            if let Some(interp) = &f.interp {
                facts.push(format!("loader {interp}"));
            }
            writeln!(out, "{}: {}", f.name, facts.join(", "))?;
            for n in &f.needs {
                let met = match n.met {
                    Met::Bundled => format!("bundled  {}", n.path.as_deref().unwrap_or_default()),
                    Met::Glibc => "glibc".to_owned(),
                    Met::Missing => "MISSING: neither bundled nor part of glibc".to_owned(),
                };
                writeln!(out, "  {:<24} {met}", n.name)?;
            }
            for p in &f.absolute_search_paths {
                writeln!(
                    out,
                    "  search path {p}: an absolute path on the build host (where it exists on the target, its libraries are loaded instead)"
                )?;
            }
        }
        match &report.glibc_floor {
            Some(floor) => writeln!(
                out,
                "glibc floor: {floor} (the target needs at least this glibc)"
            )?,
            None if report.files.is_empty() => writeln!(out, "no ELF files")?,
            None => writeln!(out, "glibc floor: none")?,
        }
    }
    out.flush()?;
    if report.missing > 0 {
        return Err(PackError::MissingLibraries {
            path: args.app,
            count: report.missing,
        }
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
