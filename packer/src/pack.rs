//! Packing: app directory in, executable out.
//!
//! Files are read and compressed in parallel (rayon) in batches, then written in name order, so
//! the output is the same bytes whatever the thread timing. Files over 64 MiB are streamed
//! instead (read twice, never held in memory), to the same bytes. The executable is written to a
//! temporary file beside the output and renamed into place only when complete: an interrupted
//! pack never leaves a half-written executable under the output's name.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use wrapkit_runtime::format::manifest::{Manifest, Run, StubInfo};
use wrapkit_runtime::format::trailer::Trailer;
use wrapkit_runtime::format::writer::{
    ArchiveWriter, Compression, Finished, PreparedEntry, StreamError,
};
use wrapkit_runtime::format::{EntryKind, FORMAT_VERSION, path};

use crate::config::Config;
use crate::error::PackError;
use crate::walk::{self, Filter, SourceEntry};

/// Timestamp stamped on entries when `SOURCE_DATE_EPOCH` is unset: 1980-01-01, zip's epoch.
pub const DEFAULT_MTIME: i64 = 315_532_800;
/// Batches hold at most this many bytes of input, bounding memory on large apps.
const BATCH_BYTES: u64 = 64 << 20;
/// Files larger than this are not held in memory: they are read twice and streamed (see
/// `ArchiveWriter::add_streamed`), one at a time, to the same bytes.
const STREAM_ABOVE: u64 = 64 << 20;
const BATCH_FILES: usize = 4096;
/// Show a progress bar only for packs that last longer than this.
const PROGRESS_AFTER: Duration = Duration::from_millis(300);

/// Everything `pack` needs, config file and flags already merged.
#[derive(Debug, Clone)]
pub struct PackOptions {
    pub input: PathBuf,
    pub output: PathBuf,
    pub runtime: Option<PathBuf>,
    pub name: String,
    pub version: String,
    pub entry: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub compression: Compression,
    pub follow_symlinks: bool,
    /// Entry timestamp when `SOURCE_DATE_EPOCH` is unset.
    pub mtime: i64,
    /// Draw a progress bar when stderr is a terminal.
    pub progress: bool,
    /// Exec mode: run this program (an archive path) with these arguments instead of Lua.
    pub exec: Option<Vec<String>>,
    /// Exec mode: environment variables for the program.
    pub env: BTreeMap<String, String>,
}

impl PackOptions {
    /// Defaults for `input`, then its `wrapkit.toml`.
    pub fn from_config(input: &Path, output: &Path, config: Config) -> Self {
        let dir_name = fs::canonicalize(input)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "app".into());
        PackOptions {
            input: input.to_path_buf(),
            output: output.to_path_buf(),
            runtime: None,
            name: config.name.unwrap_or(dir_name),
            version: config.version.unwrap_or_else(|| "0.0.0".into()),
            entry: config.entry.unwrap_or_else(|| "main.lua".into()),
            include: config.include.unwrap_or_else(|| vec!["**".into()]),
            exclude: config.exclude.unwrap_or_default(),
            compression: config.compression.map(Into::into).unwrap_or_default(),
            follow_symlinks: config.follow_symlinks.unwrap_or(false),
            mtime: config.source_date_epoch.unwrap_or(DEFAULT_MTIME),
            progress: true,
            exec: config.exec,
            env: config.env.unwrap_or_default(),
        }
    }
}

/// What was packed.
#[derive(Debug)]
pub struct PackReport {
    pub output: PathBuf,
    pub files: u64,
    pub entries: u64,
    /// Bytes of file contents read.
    pub input_bytes: u64,
    pub stub_bytes: u64,
    pub total_bytes: u64,
    pub trailer: Trailer,
    pub elapsed: Duration,
}

pub fn pack(opts: &PackOptions) -> Result<PackReport, PackError> {
    let started = Instant::now();
    let input = fs::canonicalize(&opts.input).map_err(|source| PackError::Read {
        path: opts.input.clone(),
        source,
    })?;
    if !input.is_dir() {
        return Err(PackError::NotADirectory {
            path: opts.input.clone(),
        });
    }
    let output = absolute_output(&opts.output)?;
    if output.starts_with(&input) {
        return Err(PackError::OutputInsideInput { output, input });
    }
    check_output(&output)?;
    let mtime = source_date_epoch()?.unwrap_or(opts.mtime);
    let filter = Filter::new(&opts.include, &opts.exclude)?;
    let entries = walk::walk(&input, &filter, opts.follow_symlinks)?;
    match &opts.exec {
        None => check_entry(&entries, &opts.entry, &input)?,
        Some(argv) => check_exec(&entries, argv, &opts.env, &opts.entry)?,
    }
    let stub = crate::stub::load(opts.runtime.as_deref())?;

    let out_dir = output.parent().expect("an absolute file path has a parent");
    let write_err = |source| PackError::Write {
        path: output.clone(),
        source,
    };
    let tmp = tempfile::Builder::new()
        .prefix(".wrapkit-")
        .suffix(".tmp")
        .tempfile_in(out_dir)
        .map_err(write_err)?;
    let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
    out.write_all(&stub).map_err(write_err)?;
    let mut writer = ArchiveWriter::new(out, stub.len() as u64, mtime);

    let input_bytes: u64 = entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| e.size)
        .sum();
    let progress = Progress::new(opts.progress, input_bytes);
    for batch in batches(&entries) {
        let streamed = |e: &SourceEntry| e.kind == EntryKind::File && e.size > STREAM_ABOVE;
        let prepared: Vec<Option<PreparedEntry>> = batch
            .par_iter()
            .map(|e| {
                (!streamed(e))
                    .then(|| prepare(e, opts.compression))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        for (e, p) in batch.iter().zip(&prepared) {
            match p {
                Some(p) => writer.add(p).map_err(write_err)?,
                None => writer
                    .add_streamed(e.name.clone(), e.mode, opts.compression, || {
                        File::open(&e.source)
                    })
                    .map_err(|err| match err {
                        StreamError::Source(source) => PackError::Read {
                            path: e.source.clone(),
                            source,
                        },
                        StreamError::Output(source) => write_err(source),
                    })?,
            }
            progress.advance(if e.kind == EntryKind::File { e.size } else { 0 });
        }
    }
    let manifest = Manifest {
        format: FORMAT_VERSION,
        name: opts.name.clone(),
        version: opts.version.clone(),
        packer: concat!("wrapkit ", env!("CARGO_PKG_VERSION")).into(),
        stub: StubInfo::of(&stub),
        run: match &opts.exec {
            None => Run::Lua {
                entry: opts.entry.clone(),
            },
            Some(argv) => Run::Exec {
                argv: argv.clone(),
                env: opts.env.clone(),
            },
        },
    };
    let Finished {
        out,
        trailer,
        end: total_bytes,
        entries: entry_count,
    } = writer.finish(&manifest).map_err(write_err)?;
    out.into_inner().map_err(|e| write_err(e.into_error()))?;
    progress.finish();

    let file = tmp.as_file();
    file.set_permissions(fs::Permissions::from_mode(0o755))
        .map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    tmp.persist(&output).map_err(|e| write_err(e.error))?;

    Ok(PackReport {
        output,
        files: entries.iter().filter(|e| e.kind == EntryKind::File).count() as u64,
        entries: entry_count,
        input_bytes,
        stub_bytes: stub.len() as u64,
        total_bytes,
        trailer,
        elapsed: started.elapsed(),
    })
}

/// The output is written beside its name and renamed over it: right for a regular file (or
/// nothing), never for a directory, FIFO, socket or device, which would be replaced by a file
/// (as root, `-o /dev/null` would replace the system's). A symlink is replaced, never followed.
fn check_output(output: &Path) -> Result<(), PackError> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(output) else {
        return Ok(());
    };
    let ft = meta.file_type();
    let kind = if ft.is_file() || ft.is_symlink() {
        return Ok(());
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "device"
    } else {
        "special file"
    };
    Err(PackError::OutputNotAFile {
        path: output.to_path_buf(),
        kind,
    })
}

/// The output path made absolute through its (existing) parent directory, so that "inside
/// the input" is decided on real paths.
fn absolute_output(output: &Path) -> Result<PathBuf, PackError> {
    let file_name = output.file_name().ok_or_else(|| PackError::Write {
        path: output.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the output must name a file",
        ),
    })?;
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = fs::canonicalize(parent).map_err(|source| PackError::Write {
        path: output.to_path_buf(),
        source,
    })?;
    Ok(parent.join(file_name))
}

/// `SOURCE_DATE_EPOCH`, when set (reproducible-builds.org).
fn source_date_epoch() -> Result<Option<i64>, PackError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| PackError::SourceDateEpoch { value }),
        _ => Ok(None),
    }
}

/// The entry script must be a file in the archive (directly or through an in-tree symlink).
fn check_entry(entries: &[SourceEntry], entry: &str, input: &Path) -> Result<(), PackError> {
    let missing = || PackError::MissingEntry {
        entry: entry.to_owned(),
        dir: input.to_path_buf(),
    };
    let find = |name: &str| {
        entries
            .binary_search_by(|e| e.name.as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| &entries[i])
    };
    let mut name = entry.to_owned();
    for _ in 0..40 {
        match find(&name) {
            Some(e) if e.kind == EntryKind::File => return Ok(()),
            Some(e) if e.kind == EntryKind::Symlink => {
                let target = e.target.as_deref().unwrap_or_default();
                name = path::resolve_link(&e.name, target).ok_or_else(missing)?;
            }
            _ => return Err(missing()),
        }
    }
    Err(missing())
}

/// Exec mode: the program must be an executable file in the archive (directly or through
/// in-tree symlinks), and every argument and variable must survive `execve`.
fn check_exec(
    entries: &[SourceEntry],
    argv: &[String],
    env: &BTreeMap<String, String>,
    entry: &str,
) -> Result<(), PackError> {
    let bad = |reason: String| Err(PackError::BadExec { reason });
    let Some(program) = argv.first() else {
        return bad("it is empty; name a program inside the app directory".into());
    };
    if entry != "main.lua" {
        return bad(format!(
            "it is set together with the Lua entry `{entry}`; choose one"
        ));
    }
    if let Some(nul) = argv.iter().chain(env.values()).find(|a| a.contains('\0')) {
        return bad(format!("`{}` contains a NUL byte", nul.escape_debug()));
    }
    if path::validate(program).is_err() || path::is_reserved(program) {
        return bad(format!(
            "the program `{program}` is not a relative path inside the app directory"
        ));
    }
    let find = |name: &str| {
        entries
            .binary_search_by(|e| e.name.as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| &entries[i])
    };
    let mut name = program.clone();
    let file = (0..40).find_map(|_| match find(&name) {
        Some(e) if e.kind == EntryKind::Symlink => {
            let target = e.target.as_deref().unwrap_or_default();
            name = path::resolve_link(&e.name, target).unwrap_or_default();
            None
        }
        found => Some(found),
    });
    match file.flatten() {
        Some(e) if e.kind == EntryKind::File && e.mode & 0o111 != 0 => {}
        Some(e) if e.kind == EntryKind::File => {
            return bad(format!(
                "the program `{program}` is not executable (run `chmod +x` on it before packing)"
            ));
        }
        _ => {
            return bad(format!(
                "the program `{program}` is not a file in the app directory"
            ));
        }
    }
    for key in env.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return bad(format!("`{key}` is not a valid environment variable name"));
        }
        if key == "WRAPKIT_EXE" || key == "WRAPKIT_ROOT" {
            return bad(format!(
                "`{key}` is set by the runtime and cannot be overridden"
            ));
        }
    }
    Ok(())
}

/// Splits entries into runs of bounded total size, in order.
fn batches(entries: &[SourceEntry]) -> impl Iterator<Item = &[SourceEntry]> {
    let mut rest = entries;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut n = 0;
        while n < rest.len() && n < BATCH_FILES && (n == 0 || bytes + rest[n].size <= BATCH_BYTES) {
            bytes += rest[n].size;
            n += 1;
        }
        let (batch, tail) = rest.split_at(n);
        rest = tail;
        Some(batch)
    })
}

fn prepare(e: &SourceEntry, compression: Compression) -> Result<PreparedEntry, PackError> {
    Ok(match e.kind {
        EntryKind::Dir => PreparedEntry::dir(e.name.clone()),
        EntryKind::Symlink => {
            PreparedEntry::symlink(e.name.clone(), e.target.as_deref().unwrap_or_default())
        }
        EntryKind::File => {
            let contents = read_file(&e.source)?;
            PreparedEntry::file(e.name.clone(), e.mode, contents, compression)
        }
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, PackError> {
    let err = |source| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(err)?;
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut buf).map_err(err)?;
    Ok(buf)
}

/// A progress bar that appears only on a terminal, and only once a pack has lasted a moment.
struct Progress {
    bar: indicatif::ProgressBar,
    started: Instant,
    enabled: bool,
    shown: std::cell::Cell<bool>,
}

impl Progress {
    fn new(wanted: bool, total: u64) -> Self {
        let bar = indicatif::ProgressBar::hidden();
        bar.set_length(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} packing {bytes}/{total_bytes} {wide_bar} {eta}",
            )
            .expect("the template is valid"),
        );
        Progress {
            bar,
            started: Instant::now(),
            enabled: wanted && std::io::stderr().is_terminal(),
            shown: std::cell::Cell::new(false),
        }
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
        if self.enabled && !self.shown.get() && self.started.elapsed() > PROGRESS_AFTER {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
            self.shown.set(true);
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
