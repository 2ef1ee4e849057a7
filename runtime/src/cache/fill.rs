//! [`Cache::materialise`]: find the trees for an archive, or make them, safely under concurrency
//! and crashes. An app is one bundle tree (`bundles-v1/<digest>/`, the archive's own files)
//! plus one shared tree per layer (`layers-v1/<digest>/`, see [`super::layer`]); the bundle
//! holds a symlink at each layer's prefix to the layer's tree. Every tree goes through the same
//! protocol ([`Cache::tree`]):
//!
//! Warm path (no lock, no writes but an occasional `futimens`): read `<digest>.ok`, then `stat`
//! every directory it lists, relative to the open tree, and compare its modification time with
//! the one recorded when the fill finished. Removing or adding a name in a directory changes
//! that time, so a removed file is found with one system call per directory, whatever the number
//! of files, and no hashing. (A file changed in place keeps its directory's time: `wrapkit cache
//! verify` finds it. The tree is read-only, so a program run from it cannot.)
//!
//! Cold path: take `<digest>.lock`, check again (the lock's previous holder may have just
//! filled it: the loser of a race uses the winner's tree), then delete any marker, remove temp
//! dirs of earlier killed fills, refuse a `noexec` filesystem, validate the whole archive
//! (once per start, however many trees are cold), check its digest, extract into
//! `.tmp-<digest>-<pid>/`, make it read-only, `syncfs`, rename it into place (or swap it
//! atomically with a damaged tree), `fsync` the directory, record the directories' times and
//! only then write the marker (temp file, `fsync`, rename). Whatever point a fill is killed at,
//! the next start finds no marker and starts again; it never uses a partial tree.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{FileType, OFlags, Timestamps};

use super::lock::Lock;
use super::marker::{self, DirTime, Marker};
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

/// An app's trees, ready to use.
#[derive(Debug)]
pub struct Materialised {
    /// The bundle's tree: `WRAPKIT_ROOT`.
    pub root: PathBuf,
    /// The least warm of the trees' outcomes.
    pub outcome: Outcome,
    /// Each layer's prefix in the archive and its shared tree.
    pub layers: Vec<(String, PathBuf)>,
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

impl Outcome {
    /// The colder of two outcomes: a start is warm only if every tree was.
    fn worst(self, other: Outcome) -> Outcome {
        match (&self, &other) {
            (Outcome::Filled { .. }, _) => self,
            (_, Outcome::Filled { .. }) => other,
            (Outcome::FilledByOther, _) => self,
            _ => other,
        }
    }
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

/// A directory of trees: `bundles-v1` or `layers-v1`, opened once.
#[derive(Clone, Copy)]
pub(super) struct Store<'c> {
    pub(super) dir: &'c Dir,
    pub(super) path: &'c Path,
    /// Whether the trees here are layers (their markers say so).
    pub(super) layers: bool,
}

/// What the cold path of one tree needs: the archive, validated and digest-checked at most once
/// per start however many trees turn out cold.
pub(super) struct Source<'a, 'b> {
    pub(super) archive: &'b Archive<'a>,
    validated: std::cell::OnceCell<validate::Validated<'a>>,
}

impl<'a, 'b> Source<'a, 'b> {
    pub(super) fn new(archive: &'b Archive<'a>) -> Self {
        Source {
            archive,
            validated: std::cell::OnceCell::new(),
        }
    }

    /// The whole archive, validated and its digest checked against the trailer.
    pub(super) fn validated(&self, trace: &Trace) -> Result<&validate::Validated<'a>, CacheError> {
        if let Some(v) = self.validated.get() {
            return Ok(v);
        }
        let archive = self.archive;
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
                expected: hex(&archive.trailer().digest),
                found: found.to_hex().to_string(),
            });
        }
        trace.say(|| format!("digest checked ({} bytes)", end - start));
        Ok(self.validated.get_or_init(|| validated))
    }
}

/// How to fill one tree: what goes in its marker and how to populate the temp dir.
pub(super) struct Filling<'f> {
    /// The marker, without its directory list (the fill adds it).
    pub(super) marker: Marker,
    /// Bytes the tree will hold, for the no-space message.
    pub(super) bytes: u64,
    /// Writes the tree's contents into the empty temp dir (handle, path for messages).
    pub(super) populate: &'f dyn Fn(&Dir, &Path) -> Result<ExtractStats, CacheError>,
}

impl Cache {
    /// The trees for `archive`, materialised if needed: its layers first, then its bundle.
    /// `exe` is the packed file, recorded in the bundle's marker for `wrapkit cache gc`.
    pub fn materialise(
        &self,
        archive: &Archive<'_>,
        exe: &Path,
        trace: &Trace,
    ) -> Result<Materialised, CacheError> {
        let manifest = archive.manifest()?;
        let source = Source::new(archive);
        let mut layers = Vec::with_capacity(manifest.layers.len());
        let mut outcome = Outcome::Warm;
        for layer in &manifest.layers {
            let (path, o) = self.materialise_layer(&source, layer, trace)?;
            layers.push((layer.prefix.clone(), path));
            outcome = outcome.worst(o);
        }

        let digest = hex(&archive.trailer().digest);
        let store = self.bundle_store();
        let layer_digests: Vec<String> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
        let populate = |tmp: &Dir, shown: &Path| {
            self.populate_bundle(&source, &manifest, &layers, tmp, shown, trace)
        };
        let filling = || -> Result<Filling<'_>, CacheError> {
            let validated = source.validated(trace)?;
            Ok(Filling {
                marker: Marker {
                    digest: digest.clone(),
                    name: manifest.name.clone(),
                    version: manifest.version.clone(),
                    files: validated.files,
                    bytes: validated.total_size,
                    exes: marker::exe_line(exe)
                        .map(|_| exe.to_path_buf())
                        .into_iter()
                        .collect(),
                    layers: layer_digests.clone(),
                    ..Marker::default()
                },
                bytes: validated.total_size,
                populate: &populate,
            })
        };
        let (root, o) = self.tree(store, &digest, Some(exe), trace, &filling)?;
        Ok(Materialised {
            root,
            outcome: outcome.worst(o),
            layers,
        })
    }

    pub(super) fn bundle_store(&self) -> Store<'_> {
        Store {
            dir: &self.bundles,
            path: &self.bundles_path,
            layers: false,
        }
    }

    /// The tree `digest` in `store`: warm, or filled by [`Filling`] (which `filling` makes only
    /// when it is needed) under the lock.
    pub(super) fn tree<'f>(
        &self,
        store: Store<'_>,
        digest: &str,
        exe: Option<&Path>,
        trace: &Trace,
        filling: &dyn Fn() -> Result<Filling<'f>, CacheError>,
    ) -> Result<(PathBuf, Outcome), CacheError> {
        let tree = store.path.join(digest);
        match self.check(store, digest, exe, trace) {
            Ok(()) => return Ok((tree, Outcome::Warm)),
            Err(why) => trace.say(|| format!("tree {} not usable: {why}", tree.display())),
        }

        let lock_name = Cache::lock_name(digest);
        let lock_err = |source| CacheError::Io {
            what: "lock",
            path: store.path.join(&lock_name),
            source,
        };
        let mut waited = false;
        let lock = match Lock::acquire(store.dir, &lock_name, false).map_err(lock_err)? {
            Some(lock) => lock,
            None => {
                trace.say(|| "another process holds the lock; waiting".into());
                waited = true;
                Lock::acquire(store.dir, &lock_name, true)
                    .map_err(lock_err)?
                    .expect("a blocking lock always returns one")
            }
        };
        trace.say(|| format!("locked {lock_name}"));
        let why = match self.check(store, digest, exe, trace) {
            Ok(()) => {
                let outcome = if waited {
                    Outcome::FilledByOther
                } else {
                    Outcome::Warm
                };
                return Ok((tree, outcome));
            }
            Err(why) => why,
        };
        let repaired = match why {
            Incomplete::NoMarker | Incomplete::NoTree if store.dir.stat(digest).is_err() => None,
            why => Some(why.to_string()),
        };
        let stats = self.fill(store, digest, &tree, &filling()?, trace)?;
        drop(lock);
        Ok((tree, Outcome::Filled { stats, repaired }))
    }

    /// The warm check: a marker for this digest, and every directory it lists unchanged since
    /// the fill. Records `exe` in a bundle's marker if it is new there.
    fn check(
        &self,
        store: Store<'_>,
        digest: &str,
        exe: Option<&Path>,
        trace: &Trace,
    ) -> Result<(), Incomplete> {
        let marker_name = Cache::marker_name(digest);
        let (file, marker) = read_marker(store.dir, &marker_name, digest)?;
        if marker.layer != store.layers {
            return Err(Incomplete::BadMarker);
        }
        let dir = store.dir.open_dir(digest).map_err(|_| Incomplete::NoTree)?;
        for d in &marker.dirs {
            let st = rustix::fs::statat(
                dir.as_fd(),
                d.name.as_str(),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            );
            let unchanged = st.is_ok_and(|st| {
                FileType::from_raw_mode(st.st_mode) == FileType::Directory
                    && st.st_mtime == d.sec
                    && st.st_mtime_nsec as i64 == d.nsec
            });
            if !unchanged {
                return Err(Incomplete::Entry {
                    name: d.name.clone(),
                    problem: "changed since the fill (something in it was removed or added)".into(),
                });
            }
        }
        trace.say(|| {
            format!(
                "tree {} complete ({} directories checked)",
                store.path.join(digest).display(),
                marker.dirs.len()
            )
        });
        note_use(store.dir, &file, &marker, exe, &marker_name);
        Ok(())
    }

    /// The cold path, lock held. Returns what was extracted.
    fn fill(
        &self,
        store: Store<'_>,
        digest: &str,
        tree: &Path,
        filling: &Filling<'_>,
        trace: &Trace,
    ) -> Result<ExtractStats, CacheError> {
        let dir = store.dir;
        let io_err = |what: &'static str, name: &str| {
            let path = store.path.join(name);
            move |source| CacheError::Io { what, path, source }
        };
        let marker_name = Cache::marker_name(digest);
        match dir.remove_file(&marker_name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &marker_name)(e)),
        }
        remove_temps(dir, digest);

        if dir.is_noexec().unwrap_or(false) {
            return Err(CacheError::NoExec {
                path: store.path.to_path_buf(),
            });
        }

        let tmp = format!(".tmp-{digest}-{}", std::process::id());
        dir.create_dir(&tmp, 0o755)
            .map_err(io_err("create", &tmp))?;
        let shown = store.path.join(&tmp);
        let result = dir
            .open_dir(&tmp)
            .map_err(io_err("open", &tmp))
            .and_then(|t| {
                let stats = (filling.populate)(&t, &shown)?;
                make_read_only(&t).map_err(io_err("make read-only", &tmp))?;
                t.sync_filesystem().map_err(io_err("sync", &tmp))?;
                trace.say(|| "read-only, synced to disk".into());
                Ok(stats)
            });
        let stats = match result {
            Ok(stats) => stats,
            Err(err) => {
                let _ = dir.remove_all(&tmp);
                let no_space = match &err {
                    CacheError::Extract { source, .. } => is_no_space(source.io_error()),
                    CacheError::Io { source, .. } => is_no_space(Some(source)),
                    _ => false,
                };
                return Err(if no_space {
                    CacheError::NoSpace {
                        path: store.path.to_path_buf(),
                        needed: filling.bytes,
                    }
                } else {
                    err
                });
            }
        };

        // Into place. A damaged tree (or anything else squatting on the name) is swapped out
        // atomically, so a process using it never sees the name missing.
        match dir.stat(digest) {
            Err(_) => dir
                .rename(&tmp, digest)
                .map_err(io_err("rename into place", digest))?,
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                match dir.exchange(&tmp, digest) {
                    Ok(()) => {
                        let _ = dir.remove_all(&tmp);
                    }
                    Err(_) => {
                        let trash = format!(".trash-{digest}-{}", std::process::id());
                        dir.rename(digest, &trash)
                            .map_err(io_err("move aside", digest))?;
                        dir.rename(&tmp, digest)
                            .map_err(io_err("rename into place", digest))?;
                        let _ = dir.remove_all(&trash);
                    }
                }
            }
            Ok(_) => {
                dir.remove_file(digest).map_err(io_err("remove", digest))?;
                dir.rename(&tmp, digest)
                    .map_err(io_err("rename into place", digest))?;
            }
        }
        dir.sync().map_err(io_err("sync", ""))?;
        trace.say(|| format!("renamed into place: {}", tree.display()));

        let mut marker = filling.marker.clone();
        marker.layer = store.layers;
        marker.dirs = dir
            .open_dir(digest)
            .and_then(|t| dir_times(&t))
            .map_err(io_err("record the directories of", digest))?;
        let tmp_marker = format!(".tmp-{digest}-{}.ok", std::process::id());
        let _ = dir.remove_file(&tmp_marker);
        dir.create_file(&tmp_marker, 0o600)
            .and_then(|mut f| {
                f.write_all(marker.encode().as_bytes())?;
                f.sync_all()
            })
            .map_err(io_err("write", &tmp_marker))?;
        dir.rename(&tmp_marker, &marker_name)
            .map_err(io_err("write", &marker_name))?;
        dir.sync().map_err(io_err("sync", ""))?;
        trace.say(|| format!("marker written: {marker_name}"));
        Ok(stats)
    }

    /// Extracts the archive's own entries (not its layers') into the empty temp dir `tmp`, adds
    /// `.wrapkit/{index,manifest.json}` and a symlink at each layer's prefix to its tree.
    fn populate_bundle(
        &self,
        source: &Source<'_, '_>,
        manifest: &crate::format::manifest::Manifest,
        layers: &[(String, PathBuf)],
        tmp: &Dir,
        shown: &Path,
        trace: &Trace,
    ) -> Result<ExtractStats, CacheError> {
        let validated = source.validated(trace)?;
        let extract_err = |source| CacheError::Extract {
            path: shown.to_path_buf(),
            source,
        };
        let opts = ExtractOptions {
            read_only: true,
            ..ExtractOptions::default()
        };
        let own;
        let entries = if manifest.layers.is_empty() {
            validated
        } else {
            own = subset(validated, |name| {
                (!manifest.layers.iter().any(|l| l.holds(name))).then_some(name)
            });
            &own
        };
        let stats = extract::extract_into(source.archive, entries, tmp, shown, &opts)
            .map_err(extract_err)?;
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
        for (prefix, path) in layers {
            let parent = crate::format::path::parent(prefix);
            let mut end = 0;
            for c in parent.split('/').filter(|c| !c.is_empty()) {
                end += c.len();
                match tmp.create_dir(&parent[..end], 0o755) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(io_err("create", &parent[..end])(e));
                    }
                    _ => {}
                }
                end += 1;
            }
            tmp.symlink(prefix, path.as_os_str())
                .map_err(io_err("create", prefix))?;
        }
        tmp.create_dir(RESERVED_DIR, 0o755)
            .map_err(io_err("create", RESERVED_DIR))?;
        // The bundle's own entries: its layers have an index of their own.
        let mut index = IndexBuilder::default();
        for e in &entries.entries {
            index.push(e);
        }
        for (name, bytes) in [
            (INDEX_NAME, index.encode()?),
            (MANIFEST_NAME, manifest.to_json()),
        ] {
            tmp.create_file(name, 0o644)
                .and_then(|mut f| f.write_all(&bytes))
                .map_err(io_err("write", name))?;
        }
        Ok(stats)
    }
}

/// The entries of `validated` that `rename` keeps, under the names it gives them. Names must
/// stay sorted (a filter, or a common prefix removed, keeps their order).
pub(super) fn subset<'a>(
    validated: &validate::Validated<'a>,
    rename: impl Fn(&'a str) -> Option<&'a str>,
) -> validate::Validated<'a> {
    let mut out = validate::Validated {
        entries: Vec::new(),
        total_size: 0,
        total_compressed: 0,
        files: 0,
    };
    for e in &validated.entries {
        let Some(name) = rename(e.name) else { continue };
        if e.kind == EntryKind::File {
            out.files += 1;
            out.total_size += e.size;
            out.total_compressed += e.compressed_size;
        }
        out.entries.push(Entry { name, ..e.clone() });
    }
    out
}

/// The marker `name` in `dir`, if it is a regular file holding a marker for `digest`. Never
/// blocks (a FIFO planted there is "no marker") and never follows a link.
pub(super) fn read_marker(
    dir: &Dir,
    name: &str,
    digest: &str,
) -> Result<(File, Marker), Incomplete> {
    let file = dir.open_file(name).map_err(|_| Incomplete::NoMarker)?;
    // Room for a whole marker up front: one read, not a series of small probing ones.
    let mut text = Vec::with_capacity(8192);
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
fn note_use(dir: &Dir, file: &File, marker: &Marker, exe: Option<&Path>, marker_name: &str) {
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
    if let Some(exe) = exe
        && marker.exes.len() < marker::MAX_EXES
        && !marker.exes.iter().any(|p| p == exe)
        && let Some(line) = marker::exe_line(exe)
        && let Ok(mut f) = dir.open_regular(marker_name, OFlags::WRONLY | OFlags::APPEND, 0)
    {
        // One small O_APPEND write: concurrent appenders never interleave within it.
        let _ = f.write_all(line.as_bytes());
    }
}

/// Removes the remains of earlier fills of `digest` in `dir` (we hold its lock, so none is live).
pub(super) fn remove_temps(dir: &Dir, digest: &str) {
    let Ok(listing) = dir.entries() else {
        return;
    };
    for name in listing {
        let Some(name) = name.to_str() else { continue };
        let ours = [".tmp-", ".trash-"]
            .iter()
            .any(|p| name.strip_prefix(p).is_some_and(|r| r.starts_with(digest)));
        if ours {
            let _ = dir.remove_all(name);
        }
    }
}

/// Takes the write bits off every file and directory of the tree (symlinks have none): a
/// program run from the cache cannot change it (Python would write `.pyc` files into it).
fn make_read_only(dir: &Dir) -> io::Result<()> {
    for name in dir.entries()? {
        let Some(name) = name.to_str() else { continue };
        let st = dir.stat(name)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => make_read_only(&dir.open_dir(name)?)?,
            // Extracted files are created read-only; this is for the few the fill writes.
            FileType::RegularFile if st.st_mode & 0o222 != 0 => {
                let mode = st.st_mode & 0o7777 & !0o222;
                dir.open_file(name)?
                    .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
            }
            _ => {}
        }
    }
    dir.set_mode(0o555)
}

/// Every directory of the tree (`.` first) with its modification time.
fn dir_times(root: &Dir) -> io::Result<Vec<DirTime>> {
    fn walk(dir: &Dir, name: &str, out: &mut Vec<DirTime>) -> io::Result<()> {
        let st = dir.metadata()?;
        out.push(DirTime {
            name: name.to_owned(),
            sec: st.st_mtime,
            nsec: st.st_mtime_nsec as i64,
        });
        let mut children: Vec<String> = dir
            .entries()?
            .into_iter()
            .filter_map(|n| n.into_string().ok())
            .collect();
        children.sort();
        for child in children {
            let st = dir.stat(&child)?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                let full = if name == "." {
                    child.clone()
                } else {
                    format!("{name}/{child}")
                };
                walk(&dir.open_dir(&child)?, &full, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, ".", &mut out)?;
    Ok(out)
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
