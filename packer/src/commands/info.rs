//! `wrapkit info APP [--json]`: what the file is, from the stub's ELF header to the manifest.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;
use wrapkit_runtime::format::manifest::{Manifest, Run};
use wrapkit_runtime::format::path::printable;
use wrapkit_runtime::format::trailer::hex;

use crate::cli::InfoArgs;
use crate::inspect::{self, human_bytes};

#[derive(Debug, Serialize)]
struct Info {
    file: String,
    size: u64,
    stub: StubFacts,
    payload: PayloadFacts,
    format_version: u32,
    digest: String,
    manifest: Manifest,
}

#[derive(Debug, Serialize)]
struct StubFacts {
    format: String,
    architecture: String,
    /// No interpreter and no shared libraries.
    static_linked: bool,
    size: u64,
}

#[derive(Debug, Serialize)]
struct PayloadFacts {
    offset: u64,
    size: u64,
    entries: u64,
    files: u64,
    /// Sum of file sizes, and what they take in the archive.
    content_bytes: u64,
    stored_bytes: u64,
}

pub(crate) fn info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let opened = inspect::open(&args.app)?;
    let validated = opened.validate()?;
    let manifest = opened.manifest()?;
    // The ELF header is read from the whole file: a carried payload's stub is not contiguous.
    let mut stub = stub_facts(opened.bytes);
    stub.size = opened
        .archive
        .carried()
        .map_or(opened.archive.start_pos(), |c| c.record.len);
    let info = Info {
        file: args.app.display().to_string(),
        size: opened.bytes.len() as u64,
        stub,
        payload: PayloadFacts {
            offset: opened.archive.start_pos(),
            size: opened.archive.bytes().len() as u64 - opened.archive.start_pos(),
            entries: validated.entries.len() as u64,
            files: validated.files,
            content_bytes: validated.total_size,
            stored_bytes: validated.total_compressed,
        },
        format_version: opened.archive.trailer().version,
        digest: format!("blake3:{}", hex(&opened.archive.trailer().digest)),
        manifest,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&info)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let ratio = if info.payload.content_bytes == 0 {
        100.0
    } else {
        info.payload.stored_bytes as f64 * 100.0 / info.payload.content_bytes as f64
    };
    // Plain text goes to a terminal: everything taken from the file is escaped.
    let run = match &info.manifest.run {
        Run::Lua { entry } => format!("lua {}", printable(entry)),
        Run::Exec { argv, .. } => {
            let mut run = String::from("exec");
            for a in argv {
                run.push(' ');
                run.push_str(&printable(a));
            }
            run
        }
    };
    writeln!(
        out,
        "file:        {} ({})",
        printable(&info.file),
        human_bytes(info.size)
    )?;
    writeln!(
        out,
        "stub:        {} {}, {}, {}",
        info.stub.format,
        info.stub.architecture,
        if info.stub.static_linked {
            "static"
        } else {
            "dynamic"
        },
        human_bytes(info.stub.size)
    )?;
    writeln!(
        out,
        "payload:     at offset {}, {} ({} entries, {} files)",
        info.payload.offset,
        human_bytes(info.payload.size),
        info.payload.entries,
        info.payload.files
    )?;
    writeln!(
        out,
        "compression: {} of files stored in {} ({ratio:.1} %)",
        human_bytes(info.payload.content_bytes),
        human_bytes(info.payload.stored_bytes)
    )?;
    writeln!(out, "format:      version {}", info.format_version)?;
    writeln!(out, "digest:      {}", info.digest)?;
    writeln!(
        out,
        "app:         {} {}",
        printable(&info.manifest.name),
        printable(&info.manifest.version)
    )?;
    writeln!(out, "run:         {run}")?;
    for l in &info.manifest.layers {
        writeln!(
            out,
            "layer:       {} (libc {}{}, {})",
            printable(&l.prefix),
            l.libc.as_str(),
            l.glibc
                .as_deref()
                .map(|g| format!(", glibc >= {}", printable(g)))
                .unwrap_or_default(),
            printable(l.digest.get(..12).unwrap_or(&l.digest))
        )?;
    }
    writeln!(out, "packer:      {}", printable(&info.manifest.packer))?;
    Ok(ExitCode::SUCCESS)
}

fn stub_facts(stub: &[u8]) -> StubFacts {
    let size = stub.len() as u64;
    match goblin::elf::Elf::parse(stub) {
        Ok(elf) => StubFacts {
            format: format!("ELF {}-bit", if elf.is_64 { 64 } else { 32 }),
            architecture: goblin::elf::header::machine_to_str(elf.header.e_machine).to_lowercase(),
            static_linked: elf.interpreter.is_none() && elf.libraries.is_empty(),
            size,
        },
        Err(_) => StubFacts {
            format: "unknown".into(),
            architecture: "unknown".into(),
            static_linked: false,
            size,
        },
    }
}
