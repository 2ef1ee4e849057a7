//! `wrapkit unpack APP DIR`: the app's files plus a `wrapkit.toml` from its manifest, so that
//! `wrapkit pack DIR` (same wrapkit, same runtime) writes the same bytes again.

use std::fmt::Write as _;
use std::process::ExitCode;

use wrapkit_runtime::format::manifest::{Run, StubInfo};
use wrapkit_runtime::format::writer::{Compression, PreparedEntry};
use wrapkit_runtime::format::{EntryKind, method, zip};

use crate::cli::UnpackArgs;
use crate::commands::extract::extract_to;
use crate::error::PackError;
use crate::inspect::{self, Opened};
use crate::messages::{self, note};
use crate::{config, pack, stub};

pub(crate) fn unpack(args: UnpackArgs) -> anyhow::Result<ExitCode> {
    let opened = inspect::open(&args.app)?;
    let validated = opened.validate()?;
    let manifest = opened.manifest()?;
    let compression = infer_compression(&opened, &validated.entries)?;
    let mtime = entry_mtime(&opened);
    let (target, stats) = extract_to(&args.app, &args.dir)?;

    let mut toml = String::new();
    let _ = writeln!(
        toml,
        "# Written by `wrapkit unpack` from {}",
        args.app.display()
    );
    let _ = writeln!(toml, "name = {}", quote(&manifest.name));
    let _ = writeln!(toml, "version = {}", quote(&manifest.version));
    match &manifest.run {
        Run::Lua { entry } => {
            let _ = writeln!(toml, "entry = {}", quote(entry));
        }
        Run::Exec { argv, env, .. } => {
            let argv: Vec<String> = argv.iter().map(|a| quote(a)).collect();
            let _ = writeln!(toml, "exec = [{}]", argv.join(", "));
            if !env.is_empty() {
                let pairs: Vec<String> = env
                    .iter()
                    .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
                    .collect();
                let _ = writeln!(toml, "env = {{ {} }}", pairs.join(", "));
            }
        }
    }
    let _ = writeln!(toml, "compression = \"{compression}\"");
    if mtime != pack::DEFAULT_MTIME {
        let _ = writeln!(toml, "source-date-epoch = {mtime}");
    }
    // Through the extracted tree's handle, creating a new file: an archive entry of the same
    // name (a symlink to some file of the user's, say) is never written through.
    let path = args.dir.join(config::FILE_NAME);
    target
        .create_file(config::FILE_NAME, 0o644)
        .and_then(|mut f| std::io::Write::write_all(&mut f, toml.as_bytes()))
        .map_err(|source| PackError::Write { path, source })?;
    note!("unpacked {} files into {}", stats.files, args.dir.display());
    if StubInfo::of(stub::BUILT_IN) != manifest.stub {
        messages::warning(
            &format!(
                "{} was packed with another runtime than this wrapkit's",
                args.app.display()
            ),
            Some("pass it as `--runtime` to `wrapkit pack` to repack it identically"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The setting that reproduces every entry's method: `auto` if its rule explains them all,
/// else `store` or `deflate` if all entries agree.
fn infer_compression(
    opened: &Opened,
    entries: &[wrapkit_runtime::format::index::Entry<'_>],
) -> Result<&'static str, PackError> {
    let files: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .collect();
    let mut auto_fits = true;
    for e in &files {
        let contents = opened
            .archive
            .contents(e, true)
            .map_err(|s| opened.packed_error(s))?;
        if PreparedEntry::file(String::new(), 0, contents.into_owned(), Compression::Auto).method
            != e.method
        {
            auto_fits = false;
            break;
        }
    }
    Ok(if auto_fits {
        "auto"
    } else if files.iter().all(|e| e.method == method::STORED) {
        "store"
    } else {
        "deflate"
    })
}

/// The timestamp every entry carries (wrapkit writes one for all).
fn entry_mtime(opened: &Opened) -> i64 {
    let (cd_pos, _) = opened.archive.central_directory();
    match zip::decode_central(&opened.bytes[cd_pos as usize..], cd_pos) {
        Ok(h) => zip::unix_from_dos(h.fields.dos_time, h.fields.dos_date),
        Err(_) => pack::DEFAULT_MTIME,
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
