//! Looking after the cache from outside a running app: what `wrapkit cache ls | verify | gc |
//! clear` are built on. Listing reads markers and directories only; verifying re-reads every
//! file of a tree against the index copy saved beside it (`<tree>/.wrapkit/index`); removing
//! takes the tree's lock (skipping trees being filled right now), deletes the marker first, then
//! moves the tree aside and deletes it, so a start racing with removal never uses half a tree.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::FileType;

use super::Cache;
use super::lock::Lock;
use super::marker::Marker;
use crate::beneath::{self, Dir};
use crate::format::index::Index;
use crate::format::trailer::{TRAILER_LEN, Trailer, hex};
use crate::format::{EntryKind, INDEX_NAME};

/// One tree in the cache, complete or not.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub digest: String,
    /// The tree's directory (may be missing when only a marker or temp dir is left).
    pub path: PathBuf,
    /// The parsed marker: `None` means the tree is incomplete (never finished, or damaged).
    pub marker: Option<Marker>,
    /// When a start last used the tree (the marker's mtime), to within a day.
    pub last_used: Option<SystemTime>,
    /// Bytes on disk (sum of file sizes in the tree).
    pub size: u64,
    /// A shared layer (`layers-v1/`), not an app's bundle.
    pub layer: bool,
}

/// What removing a tree did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Removed; this many bytes freed.
    Removed(u64),
    /// Another process holds its lock (it is being filled or repaired): left alone.
    Busy,
}

/// The first problem `verify` found in a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct Damage {
    pub name: String,
    pub problem: String,
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Cache {
    /// The directory of trees that holds `digest`: the layers' if it is one there, else the
    /// bundles'.
    fn store_of(&self, digest: &str) -> (&Dir, &Path, bool) {
        let here = |d: &Dir| {
            [
                digest.to_owned(),
                Cache::marker_name(digest),
                Cache::lock_name(digest),
            ]
            .iter()
            .any(|n| d.stat(n).is_ok())
        };
        if here(&self.layers) {
            (&self.layers, &self.layers_path, true)
        } else {
            (&self.bundles, &self.bundles_path, false)
        }
    }

    /// Every tree, marker or leftover the cache holds, by digest: the bundles, then the layers.
    pub fn bundles(&self) -> io::Result<Vec<Bundle>> {
        let mut out = self.trees_in(&self.bundles, false)?;
        out.extend(self.trees_in(&self.layers, true)?);
        Ok(out)
    }

    fn trees_in(&self, dir: &Dir, layer: bool) -> io::Result<Vec<Bundle>> {
        let mut digests = Vec::new();
        for name in dir.entries()? {
            let Some(name) = name.to_str() else { continue };
            let digest = name
                .strip_suffix(".ok")
                .or_else(|| name.strip_suffix(".lock"))
                .unwrap_or(name);
            if is_digest(digest) {
                digests.push(digest.to_owned());
            }
        }
        digests.sort();
        digests.dedup();
        Ok(digests
            .into_iter()
            .map(|d| self.tree_info(dir, &d, layer))
            .collect())
    }

    /// What the cache knows about one digest.
    pub fn bundle(&self, digest: &str) -> Bundle {
        let (dir, _, layer) = self.store_of(digest);
        self.tree_info(dir, digest, layer)
    }

    fn tree_info(&self, dir: &Dir, digest: &str, layer: bool) -> Bundle {
        let (marker, last_used) =
            match super::fill::read_marker(dir, &Cache::marker_name(digest), digest) {
                Ok((file, marker)) => (
                    Some(marker),
                    file.metadata().and_then(|m| m.modified()).ok(),
                ),
                Err(_) => (None, None),
            };
        let base = if layer {
            &self.layers_path
        } else {
            &self.bundles_path
        };
        Bundle {
            digest: digest.to_owned(),
            size: tree_size(dir, digest),
            path: base.join(digest),
            marker,
            last_used,
            layer,
        }
    }

    /// Temp and trash directories left by killed fills and removals, with their digests.
    pub fn leftovers(&self) -> io::Result<Vec<(PathBuf, String)>> {
        Ok(self
            .leftover_names()?
            .into_iter()
            .map(|(name, digest)| {
                let (_, base, _) = self.store_of(&digest);
                (base.join(name), digest)
            })
            .collect())
    }

    /// [`Cache::leftovers`] by name in the bundles and layers directories.
    fn leftover_names(&self) -> io::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let names = self
            .bundles
            .entries()?
            .into_iter()
            .chain(self.layers.entries()?);
        for name in names {
            let Some(name) = name.to_str() else { continue };
            let rest = name
                .strip_prefix(".tmp-")
                .or_else(|| name.strip_prefix(".trash-"));
            if let Some(digest) = rest.and_then(|r| r.get(..64)).filter(|d| is_digest(d)) {
                out.push((name.to_owned(), digest.to_owned()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes the tree for `digest` with its marker, lock file and leftovers, unless another
    /// process is filling it.
    pub fn remove(&self, digest: &str) -> io::Result<Removal> {
        let (dir, _, _) = self.store_of(digest);
        let Some(lock) = Lock::acquire(dir, &Cache::lock_name(digest), false)? else {
            return Ok(Removal::Busy);
        };
        let freed = tree_size(dir, digest);
        match dir.remove_file(&Cache::marker_name(digest)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Ok(st) = dir.stat(digest) {
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                let trash = format!(".trash-{digest}-{}", std::process::id());
                dir.rename(digest, &trash)?;
                dir.remove_all(&trash)?;
            } else {
                dir.remove_file(digest)?;
            }
        }
        super::fill::remove_temps(dir, digest);
        lock.remove()?;
        Ok(Removal::Removed(freed))
    }

    /// Removes only the leftovers of interrupted fills and removals of `digest`, unless a fill
    /// is running now.
    pub fn remove_leftovers(&self, digest: &str) -> io::Result<Removal> {
        let (dir, _, _) = self.store_of(digest);
        let Some(_lock) = Lock::acquire(dir, &Cache::lock_name(digest), false)? else {
            return Ok(Removal::Busy);
        };
        let freed = self
            .leftover_names()?
            .iter()
            .filter(|(_, d)| d == digest)
            .map(|(name, _)| tree_size(dir, name))
            .sum();
        super::fill::remove_temps(dir, digest);
        Ok(Removal::Removed(freed))
    }

    /// Re-reads every entry of a complete tree against the index saved with it: types, sizes,
    /// execute bits, and the CRC-32 of every file and symlink target. O(tree size).
    pub fn verify(&self, digest: &str) -> Result<(), Damage> {
        let damage = |name: &str, problem: String| Damage {
            name: name.to_owned(),
            problem,
        };
        let (store, _, _) = self.store_of(digest);
        let dir = store
            .open_dir(digest)
            .map_err(|e| damage("", format!("cannot be opened: {e}")))?;
        // The index holds 100-odd bytes per entry and at most 2^20 entries.
        let bytes = dir
            .read(INDEX_NAME, 256 << 20)
            .map_err(|e| damage(INDEX_NAME, format!("cannot be read: {e}")))?;
        let index = Index::parse(&bytes, 0).map_err(|e| damage(INDEX_NAME, e.to_string()))?;
        for e in index.iter() {
            let e = e.map_err(|err| damage(INDEX_NAME, err.to_string()))?;
            super::fill::check_entry(&dir, &e).map_err(|p| damage(e.name, p))?;
            let crc = match e.kind {
                EntryKind::Dir => continue,
                EntryKind::Symlink => dir
                    .read_link(e.name)
                    .map(|t| crc32fast::hash(t.as_encoded_bytes())),
                EntryKind::File => dir.open_file(e.name).and_then(file_crc),
            }
            .map_err(|err| damage(e.name, format!("cannot be read: {err}")))?;
            if crc != e.crc32 {
                return Err(damage(
                    e.name,
                    format!(
                        "its contents changed (CRC-32 {crc:08x}, expected {:08x})",
                        e.crc32
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The digest in the trailer of the packed file at `path`, if it is one: reads only the 158
/// bytes before its archive's end (the end of the file, or of the stub's note: format::elf). `wrapkit cache gc` uses it to tell whether an executable still uses a tree. The
/// path comes from a marker and may since have been replaced by anything: a FIFO or device
/// there is "not a packed file", found without blocking.
pub fn digest_of(path: &Path) -> Option<String> {
    use std::io::{Seek, SeekFrom};
    let mut f = beneath::open_regular_path(path).ok()?;
    let len = f.metadata().ok()?.len();
    let end = crate::format::elf::archive_end_in(&f, len).unwrap_or(len);
    let pos = end.checked_sub(TRAILER_LEN as u64)?;
    f.seek(SeekFrom::Start(pos)).ok()?;
    let mut buf = vec![0u8; TRAILER_LEN];
    f.read_exact(&mut buf).ok()?;
    Trailer::decode(&buf, pos).ok().map(|t| hex(&t.digest))
}

pub(super) fn file_crc(mut f: std::fs::File) -> io::Result<u32> {
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

/// Bytes of regular files under `name` in `dir` (0 if it is missing), following no symlink.
fn tree_size(dir: &Dir, name: &str) -> u64 {
    let Ok(st) = dir.stat(name) else { return 0 };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => st.st_size as u64,
        FileType::Directory => {
            let Ok(sub) = dir.open_dir(name) else {
                return 0;
            };
            let Ok(names) = sub.entries() else { return 0 };
            names
                .iter()
                .filter_map(|n| n.to_str())
                .map(|n| tree_size(&sub, n))
                .sum()
        }
        _ => 0,
    }
}
