//! `wrapkit pack DIR -o OUT`.

use std::process::ExitCode;

use crate::cli::PackArgs;
use crate::config::Config;
use crate::inspect::human_bytes;
use crate::pack::{self, PackOptions};

pub(crate) fn pack(args: PackArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.dir)?;
    let mut opts = PackOptions::from_config(&args.dir, &args.output, config);
    if let Some(name) = args.name {
        opts.name = name;
    }
    if let Some(version) = args.app_version {
        opts.version = version;
    }
    if let Some(entry) = args.entry {
        opts.entry = entry;
    }
    if !args.include.is_empty() {
        opts.include = args.include;
    }
    opts.exclude.extend(args.exclude);
    if let Some(c) = args.compression {
        opts.compression = c.into();
    }
    if !args.exec.is_empty() {
        opts.exec = Some(args.exec);
    }
    opts.env.extend(args.env);
    opts.follow_symlinks |= args.follow_symlinks;
    opts.runtime = args.runtime;
    opts.progress = !args.quiet;

    let report = pack::pack(&opts)?;
    if !args.quiet {
        eprintln!(
            "packed {} file{} ({}) into {} ({}, {} of it payload) in {:.2} s",
            report.files,
            if report.files == 1 { "" } else { "s" },
            human_bytes(report.input_bytes),
            report.output.display(),
            human_bytes(report.total_bytes),
            human_bytes(report.total_bytes - report.stub_bytes),
            report.elapsed.as_secs_f64(),
        );
    }
    Ok(ExitCode::SUCCESS)
}
