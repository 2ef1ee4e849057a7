//! Writing a plan: stub, then archive, to a temporary file renamed over the output.
//!
//! Files are read and compressed in parallel (rayon) in batches, then written in name order, so
//! the output is the same bytes whatever the thread timing. Files over 64 MiB are streamed
//! instead (read twice, never held in memory), to the same bytes. The executable is written to a
//! temporary file beside the output and renamed into place only when complete: an interrupted
//! pack never leaves a half-written executable under the output's name. The writer adds
//! nothing and decides nothing: what is packed and what runs is the [`Plan`]'s.

use std::fs::{self, File};
use std::io::{BufWriter, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use wrapkit_runtime::format::manifest::{Manifest, StubInfo};
use wrapkit_runtime::format::trailer::Trailer;
use wrapkit_runtime::format::writer::{
    ArchiveWriter, Compression, Finished, PreparedEntry, StreamError,
};
use wrapkit_runtime::format::{EntryKind, FORMAT_VERSION};

use crate::error::PackError;
use crate::plan::{Plan, Planned, Source};

/// Batches hold at most this many bytes of input, bounding memory on large apps.
const BATCH_BYTES: u64 = 64 << 20;
/// Files larger than this are not held in memory: they are read twice and streamed (see
/// `ArchiveWriter::add_streamed`), one at a time, to the same bytes.
const STREAM_ABOVE: u64 = 64 << 20;
const BATCH_FILES: usize = 4096;
/// Show a progress bar only for packs that last longer than this.
const PROGRESS_AFTER: Duration = Duration::from_millis(300);

/// How to write: everything that is not what to write.
#[derive(Debug)]
pub struct WriteOptions<'a> {
    /// Absolute, checked output path.
    pub output: &'a Path,
    pub stub: &'a [u8],
    pub compression: Compression,
    /// Entry timestamp.
    pub mtime: i64,
    /// Draw a progress bar when stderr is a terminal.
    pub progress: bool,
}

/// What was written.
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

pub fn write(plan: &Plan, opts: &WriteOptions<'_>) -> Result<PackReport, PackError> {
    let started = Instant::now();
    let output = opts.output;
    let out_dir = output.parent().expect("an absolute file path has a parent");
    let write_err = |source| PackError::Write {
        path: output.to_path_buf(),
        source,
    };
    // Signals are caught before the file exists, and the path is set under the lock the
    // handler takes, so no signal can fall between creating the file and knowing to remove it.
    let cleanup = CleanupOnSignal::new().map_err(write_err)?;
    let tmp = {
        let mut path = cleanup.path.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = tempfile::Builder::new()
            .prefix(".wrapkit-")
            .suffix(".tmp")
            .tempfile_in(out_dir)
            .map_err(write_err)?;
        *path = Some(tmp.path().to_path_buf());
        tmp
    };
    let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
    out.write_all(opts.stub).map_err(write_err)?;
    let mut writer = ArchiveWriter::new(out, opts.stub.len() as u64, opts.mtime);

    let entries: Vec<&Planned> = plan.entries().collect();
    let (files, input_bytes) = plan.file_totals();
    let progress = Progress::new(opts.progress, input_bytes);
    for batch in batches(&entries) {
        let streamed = |e: &Planned| {
            e.kind == EntryKind::File
                && e.size > STREAM_ABOVE
                && matches!(e.source, Source::Disk(_))
        };
        let prepared: Vec<Option<PreparedEntry>> = batch
            .par_iter()
            .map(|e| {
                (!streamed(e))
                    .then(|| prepare(e, opts.compression))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        for (e, p) in batch.iter().zip(&prepared) {
            match (p, &e.source) {
                (Some(p), _) => writer.add(p).map_err(write_err)?,
                (None, Source::Disk(path)) => writer
                    .add_streamed(e.name.clone(), e.mode, opts.compression, || {
                        File::open(path)
                    })
                    .map_err(|err| match err {
                        StreamError::Source(source) => PackError::Read {
                            path: path.clone(),
                            source,
                        },
                        StreamError::Output(source) => write_err(source),
                    })?,
                (None, _) => unreachable!("only files on disk are streamed"),
            }
            progress.advance(if e.kind == EntryKind::File { e.size } else { 0 });
        }
    }
    let manifest = Manifest {
        format: FORMAT_VERSION,
        name: plan.name.clone(),
        version: plan.version.clone(),
        packer: concat!("wrapkit ", env!("CARGO_PKG_VERSION")).into(),
        stub: StubInfo::of(opts.stub),
        run: plan.run.to_manifest(),
        layers: plan.layers.clone(),
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
    tmp.persist(output).map_err(|e| write_err(e.error))?;

    Ok(PackReport {
        output: output.to_path_buf(),
        files,
        entries: entry_count,
        input_bytes,
        stub_bytes: opts.stub.len() as u64,
        total_bytes,
        trailer,
        elapsed: started.elapsed(),
    })
}

/// While alive, SIGINT, SIGTERM or SIGHUP remove the temporary output before the process dies
/// of the signal as it would have: an interrupted pack leaves nothing behind. (A drop at
/// normal exit or on error is handled by `tempfile` itself.)
struct CleanupOnSignal {
    /// The file to remove, once it exists.
    path: std::sync::Arc<std::sync::Mutex<Option<PathBuf>>>,
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CleanupOnSignal {
    fn new() -> std::io::Result<CleanupOnSignal> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        let handle = signals.handle();
        let path = std::sync::Arc::new(std::sync::Mutex::new(None::<PathBuf>));
        let shared = std::sync::Arc::clone(&path);
        let thread = std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let tmp = shared.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(tmp) = tmp.as_ref() {
                    let _ = fs::remove_file(tmp);
                }
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        });
        Ok(CleanupOnSignal {
            path,
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for CleanupOnSignal {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Splits entries into runs of bounded total size, in order.
fn batches<'p>(entries: &'p [&'p Planned]) -> impl Iterator<Item = &'p [&'p Planned]> {
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

fn prepare(e: &Planned, compression: Compression) -> Result<PreparedEntry, PackError> {
    Ok(match e.kind {
        EntryKind::Dir => PreparedEntry::dir(e.name.clone()),
        EntryKind::Symlink => {
            PreparedEntry::symlink(e.name.clone(), e.target.as_deref().unwrap_or_default())
        }
        EntryKind::File => {
            let contents = match &e.source {
                Source::Disk(path) => read_file(path)?,
                Source::Generated(bytes) => bytes.clone(),
                Source::None => Vec::new(),
            };
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
