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

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{FileType, OFlags, Timestamps};

use super::lock::Lock;
use super::marker::{self, Marker};
use super::{Cache, CacheError, Trace};
use crate::archive::Archive;
use crate::beneath::Dir;
use crate::extract::{self, ExtractOptions, ExtractStats};
use crate::format::index::{Entry, IndexBuilder};
use crate::format::trailer::hex;
use crate::format::{EntryKind, INDEX_NAME, MANIFEST_NAME, RESERVED_DIR, normalised_mode, path};
use crate::validate;

/// The marker's mtime is refreshed when it is older than this, so "last used" is accurate to a
/// day without a write on every start.
const TOUCH_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A marker is a few lines; anything larger is not one of ours.
pub(super) const MARKER_LIMIT: u64 = 64 * 1024;

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

        let lock_name = Cache::lock_name(&digest);
        let lock_err = |source| CacheError::Io {
            what: "lock",
            path: self.bundles_path.join(&lock_name),
            source,
        };
        let mut waited = false;
        let lock = match Lock::acquire(&self.bundles, &lock_name, false).map_err(lock_err)? {
            Some(lock) => lock,
            None => {
                trace.say(|| "another process holds the lock; waiting".into());
                waited = true;
                Lock::acquire(&self.bundles, &lock_name, true)
                    .map_err(lock_err)?
                    .expect("a blocking lock always returns one")
            }
        };
        trace.say(|| format!("locked {lock_name}"));
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
            Incomplete::NoMarker | Incomplete::NoTree if self.bundles.stat(&digest).is_err() => {
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
        let marker_name = Cache::marker_name(digest);
        let (file, marker) = self.read_marker(&marker_name, digest)?;
        let dir = self
            .bundles
            .open_dir(digest)
            .map_err(|_| Incomplete::NoTree)?;
        let index = archive.index();
        for i in 0..index.len() {
            let e = index.get(i).map_err(|err| Incomplete::Entry {
                name: format!("index record {i}"),
                problem: err.to_string(),
            })?;
            check_entry(&dir, &e).map_err(|problem| Incomplete::Entry {
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
        self.note_use(&file, &marker, exe, &marker_name);
        Ok(())
    }

    /// The marker `name`, if it is a regular file holding a marker for `digest`. Never blocks
    /// (a FIFO planted there is "no marker") and never follows a link.
    pub(super) fn read_marker(
        &self,
        name: &str,
        digest: &str,
    ) -> Result<(File, Marker), Incomplete> {
        let file = self
            .bundles
            .open_file(name)
            .map_err(|_| Incomplete::NoMarker)?;
        // Room for a whole marker up front: one read, not a series of small probing ones.
        let mut text = Vec::with_capacity(4096);
        io::Read::read_to_end(&mut io::Read::take(&file, MARKER_LIMIT), &mut text)
            .map_err(|_| Incomplete::BadMarker)?;
        let marker = std::str::from_utf8(&text)
            .ok()
            .and_then(Marker::decode)
            .filter(|m| m.digest == digest)
            .ok_or(Incomplete::BadMarker)?;
        Ok((file, marker))
    }

    /// Keeps the marker's "last used" time and list of executables current, cheaply and
    /// best-effort (a read-only cache still runs).
    fn note_use(&self, file: &File, marker: &Marker, exe: &Path, marker_name: &str) {
        let stale = file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > TOUCH_AFTER);
        if stale {
            let now = Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_NOW,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_NOW,
                },
            };
            let _ = rustix::fs::futimens(file, &now);
        }
        if marker.exes.len() < marker::MAX_EXES
            && !marker.exes.iter().any(|p| p == exe)
            && let Some(line) = marker::exe_line(exe)
            && let Ok(mut f) =
                self.bundles
                    .open_regular(marker_name, OFlags::WRONLY | OFlags::APPEND, 0)
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
        let io_err = |what: &'static str, name: &str| {
            let path = self.bundles_path.join(name);
            move |source| CacheError::Io { what, path, source }
        };
        let marker_name = Cache::marker_name(digest);
        match bundles.remove_file(&marker_name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &marker_name)(e)),
        }
        self.remove_temps(digest);

        if bundles.is_noexec().unwrap_or(false) {
            return Err(CacheError::NoExec {
                path: self.bundles_path.clone(),
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

        let tmp = format!(".tmp-{digest}-{}", std::process::id());
        bundles
            .create_dir(&tmp, 0o755)
            .map_err(io_err("create", &tmp))?;
        let result = bundles
            .open_dir(&tmp)
            .map_err(io_err("open", &tmp))
            .and_then(|dir| self.fill_tmp(archive, &validated, &dir, &tmp, trace));
        let stats = match result {
            Ok(stats) => stats,
            Err(err) => {
                let _ = bundles.remove_all(&tmp);
                let no_space = match &err {
                    CacheError::Extract { source, .. } => is_no_space(source.io_error()),
                    CacheError::Io { source, .. } => is_no_space(Some(source)),
                    _ => false,
                };
                return Err(if no_space {
                    CacheError::NoSpace {
                        path: self.bundles_path.clone(),
                        needed: validated.total_size,
                    }
                } else {
                    err
                });
            }
        };

        // Into place. A damaged tree (or anything else squatting on the name) is swapped out
        // atomically, so a process using it never sees the name missing.
        match bundles.stat(digest) {
            Err(_) => bundles
                .rename(&tmp, digest)
                .map_err(io_err("rename into place", digest))?,
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                match bundles.exchange(&tmp, digest) {
                    Ok(()) => {
                        let _ = bundles.remove_all(&tmp);
                    }
                    Err(_) => {
                        let trash = format!(".trash-{digest}-{}", std::process::id());
                        bundles
                            .rename(digest, &trash)
                            .map_err(io_err("move aside", digest))?;
                        bundles
                            .rename(&tmp, digest)
                            .map_err(io_err("rename into place", digest))?;
                        let _ = bundles.remove_all(&trash);
                    }
                }
            }
            Ok(_) => {
                bundles
                    .remove_file(digest)
                    .map_err(io_err("remove", digest))?;
                bundles
                    .rename(&tmp, digest)
                    .map_err(io_err("rename into place", digest))?;
            }
        }
        bundles.sync().map_err(io_err("sync", ""))?;
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
        let tmp_marker = format!(".tmp-{digest}-{}.ok", std::process::id());
        let _ = bundles.remove_file(&tmp_marker);
        bundles
            .create_file(&tmp_marker, 0o600)
            .and_then(|mut f| {
                f.write_all(marker.encode().as_bytes())?;
                f.sync_all()
            })
            .map_err(io_err("write", &tmp_marker))?;
        bundles
            .rename(&tmp_marker, &marker_name)
            .map_err(io_err("write", &marker_name))?;
        bundles.sync().map_err(io_err("sync", ""))?;
        trace.say(|| format!("marker written: {marker_name}"));
        Ok(stats)
    }

    /// Extracts into the empty temp dir `tmp` (named `tmp_name` in the bundles directory),
    /// adds `.wrapkit/{index,manifest.json}` and flushes it all to disk.
    fn fill_tmp(
        &self,
        archive: &Archive<'_>,
        validated: &validate::Validated<'_>,
        tmp: &Dir,
        tmp_name: &str,
        trace: &Trace,
    ) -> Result<ExtractStats, CacheError> {
        let shown = self.bundles_path.join(tmp_name);
        let extract_err = |source| CacheError::Extract {
            path: shown.clone(),
            source,
        };
        let opts = ExtractOptions {
            fsync: false,
            threads: 0,
        };
        let stats =
            extract::extract_into(archive, validated, tmp, &shown, &opts).map_err(extract_err)?;
        trace.say(|| {
            format!(
                "extracted {} files, {} directories, {} symlinks ({} bytes)",
                stats.files, stats.dirs, stats.symlinks, stats.bytes
            )
        });

        let io_err = |what: &'static str, name: &str| {
            let path = shown.join(name);
            move |source| CacheError::Io { what, path, source }
        };
        tmp.create_dir(RESERVED_DIR, 0o755)
            .map_err(io_err("create", RESERVED_DIR))?;
        let mut index = IndexBuilder::default();
        for e in &validated.entries {
            index.push(e);
        }
        for (name, bytes) in [
            (INDEX_NAME, index.encode()?),
            (MANIFEST_NAME, archive.manifest()?.to_json()),
        ] {
            tmp.create_file(name, 0o644)
                .and_then(|mut f| f.write_all(&bytes))
                .map_err(io_err("write", name))?;
        }
        tmp.sync_filesystem().map_err(io_err("sync", ""))?;
        trace.say(|| "synced to disk".into());
        Ok(stats)
    }

    /// Removes the remains of earlier fills of `digest` (we hold its lock, so none is live).
    pub(super) fn remove_temps(&self, digest: &str) {
        let Ok(listing) = self.bundles.entries() else {
            return;
        };
        for name in listing {
            let Some(name) = name.to_str() else { continue };
            let ours = [".tmp-", ".trash-"]
                .iter()
                .any(|p| name.strip_prefix(p).is_some_and(|r| r.starts_with(digest)));
            if ours {
                let _ = self.bundles.remove_all(name);
            }
        }
    }
}

/// Compares one index entry with what is on disk.
pub(super) fn check_entry(dir: &Dir, e: &Entry<'_>) -> Result<(), String> {
    if path::validate(e.name).is_err() {
        return Err("is not a valid name".into());
    }
    // One fstatat relative to the tree's handle. Intermediate components may be the tree's
    // own symlinks (the validator proved they stay inside it); the last is never followed.
    let st = match rustix::fs::statat(dir.as_fd(), e.name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Err("is missing".into()),
        Err(err) => return Err(format!("cannot be inspected: {err}")),
    };
    let (want_type, what) = match e.kind {
        EntryKind::File => (FileType::RegularFile, "a file"),
        EntryKind::Dir => (FileType::Directory, "a directory"),
        EntryKind::Symlink => (FileType::Symlink, "a symlink"),
    };
    if FileType::from_raw_mode(st.st_mode) != want_type {
        return Err(format!("is not {what}"));
    }
    if e.kind != EntryKind::Dir && st.st_size as u64 != e.size {
        return Err(format!("has {} bytes instead of {}", st.st_size, e.size));
    }
    if e.kind == EntryKind::File {
        let want_exec = normalised_mode(EntryKind::File, e.mode) & 0o100 != 0;
        if (st.st_mode & 0o100 != 0) != want_exec {
            return Err("has the wrong execute permission".into());
        }
    }
    Ok(())
}

fn is_no_space(err: Option<&io::Error>) -> bool {
    err.is_some_and(|e| {
        e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded
    })
}
