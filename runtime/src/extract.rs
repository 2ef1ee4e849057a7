//! Writing a validated archive out to a directory, safely and in parallel.
//!
//! The target must be an existing, empty directory that is not a symlink. Directories are created
//! first (parents before children), then files are written by a pool of threads, then symlinks
//! last, so no write ever goes through a link: files are opened with `O_CREAT | O_EXCL |
//! O_NOFOLLOW`, directories with `mkdir`, which never follow a final symlink either. Modes are
//! normalised (files 0644 or 0755, directories 0755; setuid, setgid, sticky and world-write bits
//! never reach the disk). Inflation stops at each entry's declared size and checks its CRC; a
//! file that fails is removed. Only [`crate::validate::validate`]d archives are accepted, so
//! names cannot climb out of the target.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::archive::Archive;
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

/// Extracts every entry of `validated` into `target`.
pub fn extract(
    archive: &Archive<'_>,
    validated: &Validated<'_>,
    target: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractStats, ExtractError> {
    check_target(target)?;
    let mut stats = ExtractStats::default();
    let (mut files, mut links) = (Vec::new(), Vec::new());
    for e in &validated.entries {
        match e.kind {
            EntryKind::Dir => {
                create_dir(target, e.name)?;
                stats.dirs += 1;
            }
            EntryKind::File => files.push(e),
            EntryKind::Symlink => links.push(e),
        }
    }
    // Parents the archive did not list (zips from other tools often omit them).
    for e in files.iter().chain(&links) {
        let parent = crate::format::path::parent(e.name);
        if !parent.is_empty() && !target.join(parent).is_dir() {
            let mut built = String::new();
            for c in parent.split('/') {
                if !built.is_empty() {
                    built.push('/');
                }
                built.push_str(c);
                if !target.join(&built).is_dir() {
                    create_dir(target, &built)?;
                    stats.dirs += 1;
                }
            }
        }
    }

    stats.bytes = write_files(archive, &files, target, opts)?;
    stats.files = files.len() as u64;
    for e in &links {
        let link_target = archive.contents(e, true)?;
        let link_target = String::from_utf8_lossy(&link_target).into_owned();
        let path = target.join(e.name);
        std::os::unix::fs::symlink(&link_target, &path)
            .map_err(|source| ExtractError::Create { path, source })?;
        stats.symlinks += 1;
    }
    if opts.fsync {
        sync_dirs(target, validated)?;
    }
    Ok(stats)
}

fn check_target(target: &Path) -> Result<(), ExtractError> {
    let bad = || ExtractError::BadTarget {
        path: target.to_path_buf(),
    };
    let meta = fs::symlink_metadata(target).map_err(|_| bad())?;
    if !meta.is_dir() {
        return Err(bad());
    }
    let mut listing = fs::read_dir(target).map_err(|_| bad())?;
    if listing.next().is_some() {
        return Err(bad());
    }
    Ok(())
}

fn create_dir(target: &Path, name: &str) -> Result<(), ExtractError> {
    let path = target.join(name);
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&path)
        .map_err(|source| ExtractError::Create { path, source })
}

/// Writes files with a pool of threads pulling from a shared counter; the first error stops
/// the others and is returned.
fn write_files(
    archive: &Archive<'_>,
    files: &[&Entry<'_>],
    target: &Path,
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
                    match write_file(archive, e, target, opts.fsync) {
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
    target: &Path,
    fsync: bool,
) -> Result<u64, ExtractError> {
    let path = target.join(e.name);
    let raw = archive.raw_data(e)?;
    let mode = normalised_mode(EntryKind::File, e.mode);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|source| ExtractError::Create {
            path: path.clone(),
            source,
        })?;
    let result = fill(&file, e, raw, mode, fsync);
    if result.is_err() {
        let _ = fs::remove_file(&path);
    }
    result.map_err(|err| match err {
        CopyError::Format(f) => ExtractError::Format(f),
        CopyError::Write(source) => ExtractError::Write { path, source },
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

fn sync_dirs(target: &Path, validated: &Validated<'_>) -> Result<(), ExtractError> {
    let dirs = validated
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Dir)
        .map(|e| target.join(e.name));
    for dir in std::iter::once(target.to_path_buf()).chain(dirs) {
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| ExtractError::Write { path: dir, source })?;
    }
    Ok(())
}
