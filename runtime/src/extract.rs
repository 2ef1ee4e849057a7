//! Writing a validated archive out to a directory, safely and in parallel.
//!
//! The target must be an existing, empty directory that is not a symlink (also when written
//! `link/` or `link/.`). It is opened once; every name is then created relative to that handle
//! with no symlink followed in any component ([`crate::beneath::Dir`]): a directory swapped for
//! a symlink while we extract, by whoever can write in the target, redirects nothing, it only
//! makes the extraction fail. Directories are created first (parents before children), then
//! files are written by a pool of threads (`O_CREAT | O_EXCL`), then symlinks last. Modes are
//! normalised (files 0644 or 0755, directories 0755; setuid, setgid, sticky and world-write bits
//! never reach the disk). Inflation stops at each entry's declared size and checks its CRC; a
//! file that fails is removed. Only [`crate::validate::validate`]d archives are accepted, so
//! names cannot climb out of the target.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::archive::Archive;
use crate::beneath::Dir;
use crate::format::index::Entry;
use crate::format::method::{self, CopyError};
use crate::format::{EntryKind, FormatError, normalised_mode};
use crate::validate::Validated;

#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// `fsync` every file and directory before returning (for caches that must survive a crash).
    pub fsync: bool,
    /// Worker threads for files; 0 means one per available CPU.
    pub threads: usize,
    /// A directory prefix every entry's name has, left out of the names written (a layer's
    /// entries are extracted to its own tree). Entries are still read by their full names.
    pub strip_prefix: Option<String>,
    /// Create files without write permission (a cache tree is read-only once filled).
    pub read_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{}: the target must be an existing, empty directory (not a symlink)", path.display())]
    BadTarget { path: PathBuf },
    #[error("cannot create {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Format(#[from] FormatError),
}

impl ExtractError {
    /// The underlying I/O error, if any (to tell a full disk from a corrupt archive).
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            ExtractError::Create { source, .. } | ExtractError::Write { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// Extracts every entry of `validated` into the empty directory `target`.
pub fn extract(
    archive: &Archive<'_>,
    validated: &Validated<'_>,
    target: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractStats, ExtractError> {
    let bad = || ExtractError::BadTarget {
        path: target.to_path_buf(),
    };
    let dir = Dir::open(target).map_err(|_| bad())?;
    if !dir.entries().map_err(|_| bad())?.is_empty() {
        return Err(bad());
    }
    extract_into(archive, validated, &dir, target, opts)
}

/// Extracts every entry of `validated` into the open, empty directory `dir`; `shown` is its
/// path, for messages.
pub fn extract_into(
    archive: &Archive<'_>,
    validated: &Validated<'_>,
    dir: &Dir,
    shown: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractStats, ExtractError> {
    let strip = opts.strip_prefix.as_ref().map_or(0, |p| p.len() + 1);
    if let Some(p) = &opts.strip_prefix
        && let Some(e) = validated.entries.iter().find(|e| {
            e.name.len() <= strip
                || !e.name.starts_with(p.as_str())
                || e.name.as_bytes()[p.len()] != b'/'
        })
    {
        return Err(ExtractError::Format(FormatError::entry(
            e.name,
            "is not inside the prefix being extracted",
        )));
    }
    let target = Target { dir, shown, strip };
    let mut stats = ExtractStats::default();
    let (mut files, mut links) = (Vec::new(), Vec::new());
    let mut made = std::collections::HashSet::new();
    for e in &validated.entries {
        match e.kind {
            EntryKind::Dir => {
                target.create_dir(target.dest(e.name))?;
                made.insert(target.dest(e.name));
                stats.dirs += 1;
            }
            EntryKind::File => files.push(e),
            EntryKind::Symlink => links.push(e),
        }
    }
    // Parents the archive did not list (zips from other tools often omit them).
    for e in files.iter().chain(&links) {
        let parent = crate::format::path::parent(target.dest(e.name));
        if parent.is_empty() || made.contains(parent) {
            continue;
        }
        let mut end = 0;
        for c in parent.split('/') {
            end += c.len();
            let prefix = &parent[..end];
            if made.insert(prefix) {
                target.create_dir(prefix)?;
                stats.dirs += 1;
            }
            end += 1;
        }
    }

    stats.bytes = write_files(archive, &files, &target, opts)?;
    stats.files = files.len() as u64;
    for e in &links {
        let link_target = archive.contents(e, true)?;
        target
            .dir
            .symlink(target.dest(e.name), OsStr::from_bytes(&link_target))
            .map_err(|source| ExtractError::Create {
                path: target.path(target.dest(e.name)),
                source,
            })?;
        stats.symlinks += 1;
    }
    if opts.fsync {
        sync_dirs(&target, validated)?;
    }
    Ok(stats)
}

/// Where we extract to: the handle, and its path for messages.
struct Target<'a> {
    dir: &'a Dir,
    shown: &'a Path,
    /// Bytes of prefix (and its `/`) left out of every name written.
    strip: usize,
}

impl Target<'_> {
    /// Where the entry `name` goes, relative to the target.
    fn dest<'n>(&self, name: &'n str) -> &'n str {
        &name[self.strip..]
    }

    fn path(&self, name: &str) -> PathBuf {
        self.shown.join(name)
    }

    fn create_dir(&self, name: &str) -> Result<(), ExtractError> {
        self.dir
            .create_dir(name, 0o755)
            .map_err(|source| ExtractError::Create {
                path: self.path(name),
                source,
            })
    }
}

/// Writes files with a pool of threads pulling from a shared counter; the first error stops
/// the others and is returned.
fn write_files(
    archive: &Archive<'_>,
    files: &[&Entry<'_>],
    target: &Target<'_>,
    opts: &ExtractOptions,
) -> Result<u64, ExtractError> {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<ExtractError>> = Mutex::new(None);
    let bytes = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(e) = files.get(i) else { break };
                    match write_file(archive, e, target, opts.fsync, opts.read_only) {
                        Ok(n) => {
                            bytes.fetch_add(n as usize, Ordering::Relaxed);
                        }
                        Err(err) => {
                            failed.store(true, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(err);
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(err) => Err(err),
        None => Ok(bytes.into_inner() as u64),
    }
}

fn write_file(
    archive: &Archive<'_>,
    e: &Entry<'_>,
    target: &Target<'_>,
    fsync: bool,
    read_only: bool,
) -> Result<u64, ExtractError> {
    let raw = archive.raw_data(e)?;
    let mode = normalised_mode(EntryKind::File, e.mode) & if read_only { !0o222 } else { !0 };
    let file = target
        .dir
        .create_file(target.dest(e.name), mode)
        .map_err(|source| ExtractError::Create {
            path: target.path(target.dest(e.name)),
            source,
        })?;
    let result = fill(&file, e, raw, mode, fsync);
    if result.is_err() {
        let _ = target.dir.remove_file(target.dest(e.name));
    }
    result.map_err(|err| match err {
        CopyError::Format(f) => ExtractError::Format(f),
        CopyError::Write(source) => ExtractError::Write {
            path: target.path(target.dest(e.name)),
            source,
        },
    })?;
    Ok(e.size)
}

fn fill(file: &File, e: &Entry<'_>, raw: &[u8], mode: u32, fsync: bool) -> Result<(), CopyError> {
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    method::decompress_to(e.name, e.method, raw, e.size, e.crc32, &mut out)?;
    out.flush().map_err(CopyError::Write)?;
    // The umask may have removed bits; set exactly the normalised mode.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(CopyError::Write)?;
    if fsync {
        file.sync_all().map_err(CopyError::Write)?;
    }
    Ok(())
}

fn sync_dirs(target: &Target<'_>, validated: &Validated<'_>) -> Result<(), ExtractError> {
    target.dir.sync().map_err(|source| ExtractError::Write {
        path: target.shown.to_path_buf(),
        source,
    })?;
    for e in validated
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Dir)
    {
        target
            .dir
            .open_dir(target.dest(e.name))
            .and_then(|d| d.sync())
            .map_err(|source| ExtractError::Write {
                path: target.path(e.name),
                source,
            })?;
    }
    Ok(())
}
