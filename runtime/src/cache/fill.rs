//! [`Cache::materialise`]: find the tree for an archive, or make it, safely under concurrency
//! and crashes.
//!
//! Warm path (no lock, no writes but an occasional `futimens`): read `<digest>.ok`, then `lstat`
//! every index entry relative to the open tree directory and compare type, size and the execute
//! bit. That is one system call per entry and no hashing; a missing or truncated file sends us
//! down the cold path, which repairs the tree.
//!
//! Cold path: take `<digest>.lock`, check again (the lock's previous holder may have just
//! filled it: the loser of a race uses the winner's tree), then delete any marker, remove temp
//! dirs of earlier killed fills, refuse a `noexec` filesystem, validate the whole archive,
//! check its digest, extract into `.tmp-<digest>-<pid>/`, `syncfs`, rename it into place (or
//! swap it atomically with a damaged tree), `fsync` the directory, and only then write the
//! marker (temp file, `fsync`, rename). Whatever point a fill is killed at, the next start finds
//! no marker and starts again; it never uses a partial tree.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::lock::Lock;
use super::marker::{self, Marker};
use super::{Cache, CacheError, Trace, sys};
use crate::archive::Archive;
use crate::extract::{self, ExtractError, ExtractOptions, ExtractStats};
use crate::format::index::{Entry, IndexBuilder};
use crate::format::trailer::hex;
use crate::format::{EntryKind, RESERVED_DIR, normalised_mode, path};
use crate::validate;

/// The marker's mtime is refreshed when it is older than this, so "last used" is accurate to a
/// day without a write on every start.
const TOUCH_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A tree ready to use.
#[derive(Debug)]
pub struct Materialised {
    /// The tree's root: `WRAPKIT_ROOT`.
    pub root: PathBuf,
    pub outcome: Outcome,
}

/// How the tree came to be ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It was there and complete.
    Warm,
    /// Another process filled it while we waited for the lock.
    FilledByOther,
    /// We extracted it (`repaired` says why, when an earlier tree was incomplete).
    Filled {
        stats: ExtractStats,
        repaired: Option<String>,
    },
}

/// Why a tree cannot be used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Incomplete {
    NoMarker,
    BadMarker,
    NoTree,
    Entry { name: String, problem: String },
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Incomplete::NoMarker => f.write_str("no completion marker"),
            Incomplete::BadMarker => f.write_str("the completion marker is damaged"),
            Incomplete::NoTree => f.write_str("the tree is missing"),
            Incomplete::Entry { name, problem } => write!(f, "`{name}` {problem}"),
        }
    }
}

impl Cache {
    /// The tree for `archive`, materialised if needed. `exe` is the packed file, recorded in the
    /// marker for `wrapkit cache gc`.
    pub fn materialise(
        &self,
        archive: &Archive<'_>,
        exe: &Path,
        trace: &Trace,
    ) -> Result<Materialised, CacheError> {
        let digest = hex(&archive.trailer().digest);
        let tree = self.tree_path(&digest);
        match self.check(archive, &digest, &tree, exe, trace) {
            Ok(()) => {
                return Ok(Materialised {
                    root: tree,
                    outcome: Outcome::Warm,
                });
            }
            Err(why) => trace.say(|| format!("tree {} not usable: {why}", tree.display())),
        }

        let lock_path = self.lock_path(&digest);
        let lock_err = |source| CacheError::Io {
            what: "lock",
            path: lock_path.clone(),
            source,
        };
        let mut waited = false;
        let lock = match Lock::acquire(&lock_path, false).map_err(lock_err)? {
            Some(lock) => lock,
            None => {
                trace.say(|| "another process holds the lock; waiting".into());
                waited = true;
                Lock::acquire(&lock_path, true)
                    .map_err(lock_err)?
                    .expect("a blocking lock always returns one")
            }
        };
        trace.say(|| format!("locked {}", lock_path.display()));
        let why = match self.check(archive, &digest, &tree, exe, trace) {
            Ok(()) => {
                return Ok(Materialised {
                    root: tree,
                    outcome: if waited {
                        Outcome::FilledByOther
                    } else {
                        Outcome::Warm
                    },
                });
            }
            Err(why) => why,
        };
        let repaired = match why {
            Incomplete::NoMarker | Incomplete::NoTree if fs::symlink_metadata(&tree).is_err() => {
                None
            }
            why => Some(why.to_string()),
        };
        let stats = self.fill(archive, &digest, &tree, exe, trace)?;
        drop(lock);
        Ok(Materialised {
            root: tree,
            outcome: Outcome::Filled { stats, repaired },
        })
    }

    /// The warm check: a marker for this digest, and every index entry present in the tree with
    /// the right type, size and execute bit. Records `exe` in the marker if it is new there.
    fn check(
        &self,
        archive: &Archive<'_>,
        digest: &str,
        tree: &Path,
        exe: &Path,
        trace: &Trace,
    ) -> Result<(), Incomplete> {
        let marker_path = self.marker_path(digest);
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&marker_path)
        {
            Ok(f) => f,
            Err(_) => return Err(Incomplete::NoMarker),
        };
        let mut text = String::new();
        let marker = file
            .read_to_string(&mut text)
            .ok()
            .and_then(|_| Marker::decode(&text))
            .filter(|m| m.digest == digest)
            .ok_or(Incomplete::BadMarker)?;
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(tree)
            .map_err(|_| Incomplete::NoTree)?;
        let index = archive.index();
        let mut buf = Vec::with_capacity(256);
        for i in 0..index.len() {
            let e = index.get(i).map_err(|err| Incomplete::Entry {
                name: format!("index record {i}"),
                problem: err.to_string(),
            })?;
            check_entry(&dir, &e, &mut buf).map_err(|problem| Incomplete::Entry {
                name: e.name.to_owned(),
                problem,
            })?;
        }
        trace.say(|| {
            format!(
                "tree {} complete ({} entries checked)",
                tree.display(),
                index.len()
            )
        });
        self.note_use(&file, &marker, exe, &marker_path);
        Ok(())
    }

    /// Keeps the marker's "last used" time and list of executables current, cheaply and
    /// best-effort (a read-only cache still runs).
    fn note_use(&self, file: &File, marker: &Marker, exe: &Path, marker_path: &Path) {
        let stale = file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > TOUCH_AFTER);
        if stale {
            let _ = sys::touch(file);
        }
        if marker.exes.len() < marker::MAX_EXES
            && !marker.exes.iter().any(|p| p == exe)
            && let Some(line) = marker::exe_line(exe)
            && let Ok(mut f) = OpenOptions::new()
                .append(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(marker_path)
        {
            // One small O_APPEND write: concurrent appenders never interleave within it.
            let _ = f.write_all(line.as_bytes());
        }
    }

    /// The cold path, lock held. Returns what was extracted.
    fn fill(
        &self,
        archive: &Archive<'_>,
        digest: &str,
        tree: &Path,
        exe: &Path,
        trace: &Trace,
    ) -> Result<ExtractStats, CacheError> {
        let bundles = &self.bundles;
        let io_err = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { what, path, source }
        };
        let marker_path = self.marker_path(digest);
        match fs::remove_file(&marker_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &marker_path)(e)),
        }
        self.remove_temps(digest);

        let bundles_dir = File::open(bundles).map_err(io_err("open", bundles))?;
        if sys::is_noexec(&bundles_dir).unwrap_or(false) {
            return Err(CacheError::NoExec {
                path: bundles.clone(),
            });
        }

        let validated = validate::validate(archive)?;
        trace.say(|| {
            format!(
                "validated {} entries ({} files, {} bytes)",
                validated.entries.len(),
                validated.files,
                validated.total_size
            )
        });
        let start = archive.start_pos() as usize;
        let end = archive.eocd_pos() as usize;
        let found = blake3::hash(&archive.bytes()[start..end]);
        if found.as_bytes() != &archive.trailer().digest {
            return Err(CacheError::DigestMismatch {
                expected: digest.to_owned(),
                found: found.to_hex().to_string(),
            });
        }
        trace.say(|| format!("digest checked ({} bytes)", end - start));

        let tmp = bundles.join(format!(".tmp-{digest}-{}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&tmp)
            .map_err(io_err("create", &tmp))?;
        let result = self.fill_tmp(archive, &validated, &tmp, trace);
        let stats = match result {
            Ok(stats) => stats,
            Err(err) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(match err {
                    CacheError::Extract { source, .. } if is_no_space(&source) => {
                        CacheError::NoSpace {
                            path: bundles.clone(),
                            needed: validated.total_size,
                        }
                    }
                    CacheError::Io { source, .. }
                        if source.kind() == io::ErrorKind::StorageFull =>
                    {
                        CacheError::NoSpace {
                            path: bundles.clone(),
                            needed: validated.total_size,
                        }
                    }
                    other => other,
                });
            }
        };

        // Into place. A damaged tree (or anything else squatting on the name) is swapped out
        // atomically, so a process using it never sees the name missing.
        match fs::symlink_metadata(tree) {
            Err(_) => fs::rename(&tmp, tree).map_err(io_err("rename into place", tree))?,
            Ok(meta) if meta.is_dir() => match sys::exchange(&tmp, tree) {
                Ok(()) => {
                    let _ = fs::remove_dir_all(&tmp);
                }
                Err(_) => {
                    let trash = bundles.join(format!(".trash-{digest}-{}", std::process::id()));
                    fs::rename(tree, &trash).map_err(io_err("move aside", tree))?;
                    fs::rename(&tmp, tree).map_err(io_err("rename into place", tree))?;
                    let _ = fs::remove_dir_all(&trash);
                }
            },
            Ok(_) => {
                fs::remove_file(tree).map_err(io_err("remove", tree))?;
                fs::rename(&tmp, tree).map_err(io_err("rename into place", tree))?;
            }
        }
        bundles_dir.sync_all().map_err(io_err("sync", bundles))?;
        trace.say(|| format!("renamed into place: {}", tree.display()));

        let manifest = archive.manifest()?;
        let marker = Marker {
            digest: digest.to_owned(),
            name: manifest.name,
            version: manifest.version,
            files: validated.files,
            bytes: validated.total_size,
            exes: marker::exe_line(exe)
                .map(|_| exe.to_path_buf())
                .into_iter()
                .collect(),
        };
        let tmp_marker = bundles.join(format!(".tmp-{digest}-{}.ok", std::process::id()));
        write_synced(&tmp_marker, marker.encode().as_bytes())
            .map_err(io_err("write", &tmp_marker))?;
        fs::rename(&tmp_marker, &marker_path).map_err(io_err("write", &marker_path))?;
        bundles_dir.sync_all().map_err(io_err("sync", bundles))?;
        trace.say(|| format!("marker written: {}", marker_path.display()));
        Ok(stats)
    }

    /// Extracts into the empty temp dir `tmp`, adds `.wrapkit/{index,manifest.json}` and
    /// flushes it all to disk.
    fn fill_tmp(
        &self,
        archive: &Archive<'_>,
        validated: &validate::Validated<'_>,
        tmp: &Path,
        trace: &Trace,
    ) -> Result<ExtractStats, CacheError> {
        let extract_err = |source| CacheError::Extract {
            path: tmp.to_path_buf(),
            source,
        };
        let opts = ExtractOptions {
            fsync: false,
            threads: 0,
        };
        let stats = extract::extract(archive, validated, tmp, &opts).map_err(extract_err)?;
        trace.say(|| {
            format!(
                "extracted {} files, {} directories, {} symlinks ({} bytes)",
                stats.files, stats.dirs, stats.symlinks, stats.bytes
            )
        });

        let own = tmp.join(RESERVED_DIR);
        let io_err = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { what, path, source }
        };
        fs::create_dir(&own).map_err(io_err("create", &own))?;
        let mut index = IndexBuilder::default();
        for e in &validated.entries {
            index.push(e);
        }
        for (name, bytes) in [
            ("index", index.encode()),
            ("manifest.json", archive.manifest()?.to_json()),
        ] {
            let path = own.join(name);
            write_new(&path, &bytes).map_err(io_err("write", &path))?;
        }
        let dir = File::open(tmp).map_err(io_err("open", tmp))?;
        sys::syncfs(&dir).map_err(io_err("sync", tmp))?;
        trace.say(|| "synced to disk".into());
        Ok(stats)
    }

    /// Removes the remains of earlier fills of `digest` (we hold its lock, so none is live).
    pub(super) fn remove_temps(&self, digest: &str) {
        let Ok(listing) = fs::read_dir(&self.bundles) else {
            return;
        };
        for entry in listing.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = [".tmp-", ".trash-"]
                .iter()
                .any(|p| name.strip_prefix(p).is_some_and(|r| r.starts_with(digest)));
            if ours {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => {
                        let _ = fs::remove_dir_all(&path);
                    }
                    _ => {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
    }
}

/// Compares one index entry with what is on disk.
pub(super) fn check_entry(dir: &File, e: &Entry<'_>, buf: &mut Vec<u8>) -> Result<(), String> {
    if path::validate(e.name).is_err() {
        return Err("is not a valid name".into());
    }
    let st = match sys::lstat_at(dir, e.name, buf) {
        Ok(st) => st,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Err("is missing".into()),
        Err(err) => return Err(format!("cannot be inspected: {err}")),
    };
    let (want_type, what) = match e.kind {
        EntryKind::File => (libc::S_IFREG, "a file"),
        EntryKind::Dir => (libc::S_IFDIR, "a directory"),
        EntryKind::Symlink => (libc::S_IFLNK, "a symlink"),
    };
    if st.file_type != want_type {
        return Err(format!("is not {what}"));
    }
    if e.kind != EntryKind::Dir && st.size != e.size {
        return Err(format!("has {} bytes instead of {}", st.size, e.size));
    }
    if e.kind == EntryKind::File {
        let want_exec = normalised_mode(EntryKind::File, e.mode) & 0o100 != 0;
        if (st.mode & 0o100 != 0) != want_exec {
            return Err("has the wrong execute permission".into());
        }
    }
    Ok(())
}

fn is_no_space(err: &ExtractError) -> bool {
    err.io_error().is_some_and(|e| {
        e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded
    })
}

fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(bytes)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let _ = fs::remove_file(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
